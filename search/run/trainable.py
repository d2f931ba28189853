"""The Tune trainable: one core trial (`robprune.trial.run_trial`), reported every epoch.

Every fine-tuning epoch reports its validation metrics with a checkpoint, so a trial that Tune
restarts (a lost node, a killed driver) continues after its last epoch instead of from zero.
The last epoch's report waits for the final evaluation and carries both, so the number of
reports equals the number of epochs (what ASHA counts). The finished `TrialResult` travels in
that last checkpoint (`final/result.json`): it is what the Parquet export reads. After each
report the trial deletes its own older checkpoints (`search/run/checkpoint_keep.py`).
Exceptions propagate: Tune records the trial as ERROR with its reason.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

# The trial's whole stack is imported here, when Ray unpickles the trainable in the actor's
# main thread, never first inside Tune's trainable thread: a first `import torch` that runs in
# two threads at once, or is cut short, leaves torch's operator registry half-built for the
# life of the process ("operator prims::sign does not exist", "duplicate registrations",
# "Only a single TORCH_LIBRARY ..."), and every trial that process runs fails.
import torch  # noqa: F401  (imported for its side effect: the registry, built here)
from ray import tune

from robprune.config import parse_trial_config
from robprune.evaluation.evaluate_finalists import MODEL_FILE
from robprune.io.atomic import file_lock as locked
from robprune.trial import run_trial
from search.run.checkpoint_keep import prune_own
from search.run.fault_board import report_from_trial
from search.run.ownership import OWNER_ENV
from search.run.repeat_answer import replay_original
from search.run.resume_point import describe, resume_point
from search.run.storage_fault import fault_cause
from search.run.tasks import use_assigned_cpus
from search.state import storage
from search.state.checkpoints import write_manifest
from search.state.trial_files import (
    FINAL_DIR,
    PROGRESS_FILE,
    RESULT_FILE,
    TRIAL_ERROR_FILE,
    final_report,
    is_number,
    read_progress,
    write_progress,
)

__all__ = ["train_trial", "trial_name", "RepeatedTrialFailure"]


class RepeatedTrialFailure(RuntimeError):
    """A retry of a trial whose own code had failed: the message is the first failure."""


def trial_name(trial: Any) -> str:
    """Short, stable trial directory and display names: the trial id."""
    return f"trial_{trial.trial_id}"


def _quiet_ray_train_logs() -> None:
    """One 'Checkpoint successfully created' line per epoch and trial drowns the progress."""
    for name in ("ray.train", "ray.tune", "ray.train._internal.session"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _sync_dense(config: dict[str, Any]) -> None:
    """Remote storage: fetch the shared dense models into this node's local cache."""
    remote = config.get("dense_uri")
    if not remote:
        return

    local = Path(config["trial"]["cache_dir"]).expanduser()
    if (local / ".synced").exists():
        return
    with locked(local / ".sync.lock"):  # trials sharing a node download once
        if (local / ".synced").exists():
            return
        fs, path = storage.filesystem(remote)
        if not storage.exists(fs, path):
            return
        storage.copy_tree(path, str(local), source_fs=fs)
        (local / ".synced").touch()


def _restore_columns(restored_from: list[int]) -> dict[str, Any]:
    """How often the trial was restored from a checkpoint, and from which epoch last."""
    columns: dict[str, Any] = {"restores": len(restored_from)}
    if restored_from:
        columns["restored_from_epoch"] = restored_from[-1]
    return columns


def _failure_marker() -> tuple[Any, str] | None:
    try:
        context = tune.get_context().get_storage()
        return context.storage_filesystem, f"{context.trial_fs_path}/{TRIAL_ERROR_FILE}"
    except Exception:  # noqa: BLE001 - outside a Tune session (unit use): no marker
        return None


#: The recorded failure's first line names the Ray (owner mark) of the driver it failed under.
_UNDER = "under: "


def _previous_failure(marker: tuple[Any, str] | None) -> str | None:
    """The failure this trial recorded under this driver's Ray, if any. One recorded under an
    earlier driver is not repeated: a worker orphaned by a killed driver can fail for its lost
    environment (its head's disk gone), which says nothing about the trial."""
    if marker is None:
        return None
    text = (storage.read_text_or_none(*marker) or "").strip()
    first, _, rest = text.partition("\n")
    if first.startswith(_UNDER):
        if first.removeprefix(_UNDER) != os.environ.get(OWNER_ENV, ""):
            return None
        text = rest.strip()
    return text or None


def _record_failure(marker: tuple[Any, str] | None, exc: Exception) -> None:
    if marker is None or type(exc).__module__.split(".")[0] == "ray":
        return  # Ray's own control flow (a stop, a lost actor) is not the trial's failure
    text = str(exc).strip().splitlines()
    fs, path = marker
    try:
        under = f"{_UNDER}{os.environ.get(OWNER_ENV, '')}\n"
        storage.write_text(fs, path, f"{under}{type(exc).__name__}: {text[0] if text else ''}")
    except OSError:
        pass


def train_trial(config: dict[str, Any]) -> None:
    """Tune function trainable: `config["trial"]` is the trial config (CONTRACTS.md)."""
    _quiet_ray_train_logs()
    marker = _failure_marker()
    previous = _previous_failure(marker)
    if previous:
        raise RepeatedTrialFailure(previous)
    try:
        _train(config)
    except Exception as exc:
        # a full disk, a read-only folder, a failing bucket: not this trial's result
        report_from_trial(exc, tune.get_context().get_trial_id() or "?")
        if fault_cause(exc) is None:
            _record_failure(marker, exc)
        raise


def _train(config: dict[str, Any]) -> None:
    use_assigned_cpus()
    _sync_dense(config)
    trial_config = config["trial"]
    handed = tune.get_checkpoint()
    with resume_point(handed, config) as point:
        note = describe(point, handed)
        if note:
            print(note, flush=True)
        if point is None:
            if handed is not None or not replay_original(config):
                _run(trial_config, None, [])  # a repeat (search.dedupe) trains nothing
            return
        history = read_progress(point.directory)
        if point.finished:  # finished before the driver saw it: report again, do not rerun
            result = json.loads(Path(point.directory, FINAL_DIR, RESULT_FILE).read_text())
            last = result["epochs"][-1] if result["epochs"] else None
            report = {**final_report(result, last), **_restore_columns(history["restored_from"])}
            tune.report(report, checkpoint=point.checkpoint)
            prune_own()
            return
        restored_from = [*history["restored_from"], history["epoch"]]
        _run(trial_config, point.directory, restored_from, history["epochs"])


def _run(
    trial_config: dict[str, Any],
    resume_dir: str | None,
    restored_from: list[int],
    epochs: list[dict[str, Any]] | None = None,
) -> None:
    parsed = parse_trial_config(trial_config)
    ft = parsed.finetune
    total = ft.epochs if ft.method != "none" else 0
    last: dict[str, Any] = {}
    history = [e for e in (epochs or []) if isinstance(e.get("epoch"), int)]
    holding = Path(tempfile.mkdtemp(prefix="robprune-final-"))
    try:

        def on_epoch(report: Any) -> None:
            metrics = {k: v for k, v in report.metrics.items() if is_number(v)}
            history[:] = [e for e in history if e["epoch"] < report.epoch]
            history.append({"epoch": report.epoch, **metrics})
            metrics.update(_restore_columns(restored_from))
            if report.epoch >= total:  # the final report carries it, with the evaluation
                report.save_checkpoint(holding)
                write_progress(holding, report.epoch, restored_from, history)
                last["metrics"] = metrics
                return
            with tempfile.TemporaryDirectory(prefix="robprune-ckpt-") as tmp:
                report.save_checkpoint(tmp)
                write_progress(tmp, report.epoch, restored_from, history)
                write_manifest(tmp)  # last: a copy cut short is then known as such
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))
            prune_own()  # the new one is on storage: older ones can go

        result = run_trial(
            parsed,
            on_epoch=on_epoch,
            resume=resume_dir,
            log=lambda message: print(message, flush=True),
            # the pruned model travels in the final checkpoint: the finalists stage reads it
            save_model=holding / FINAL_DIR / MODEL_FILE,
        )
        result.write(holding / FINAL_DIR)
        payload = json.loads((holding / FINAL_DIR / RESULT_FILE).read_text())
        if not (holding / PROGRESS_FILE).exists():  # no fine-tuning epochs
            write_progress(holding, 0, restored_from, history)
        write_manifest(holding)
        tune.report(
            {**final_report(payload, last.get("metrics")), **_restore_columns(restored_from)},
            checkpoint=tune.Checkpoint.from_directory(str(holding)),
        )
        prune_own()
    finally:
        shutil.rmtree(holding, ignore_errors=True)
