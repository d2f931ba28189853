"""The Tune trainable: one core trial (`robprune.trial.run_trial`), reported every epoch.

Every fine-tuning epoch reports its validation metrics with a checkpoint, so a trial that Tune
restarts (a lost node, a killed driver) continues after its last epoch instead of from zero.
The last epoch's report waits for the final evaluation and carries both, so the number of
reports equals the number of epochs (what ASHA counts). The finished `TrialResult` travels in
that last checkpoint (`final/result.json`): it is what the Parquet export reads. Exceptions
propagate: Tune records the trial as ERROR with its reason.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from robprune.results_schema import STRUCTURE_METRICS, TEST_METRICS

__all__ = ["train_trial", "trial_name", "FINAL_DIR", "RESULT_FILE", "final_report"]

FINAL_DIR = "final"
RESULT_FILE = "result.json"


def trial_name(trial: Any) -> str:
    """Short, stable trial directory and display names: the trial id."""
    return f"trial_{trial.trial_id}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def final_report(result: dict[str, Any], last_epoch: dict[str, Any] | None) -> dict[str, Any]:
    """Metrics of the last report: the epoch's validation metrics, structure and test metrics.

    `robust_acc`/`clean_acc` stay the validation values (what the search optimises); the test
    split's numbers go under `test/` and are never an objective.
    """
    metrics = result["metrics"]
    report: dict[str, Any] = {}
    if last_epoch is not None:
        report.update(last_epoch)
    else:  # no fine-tuning epochs: the validation metrics of the pruned model
        report.update(
            {
                "epoch": 0,
                "clean_acc": metrics.get("val_clean_acc"),
                "robust_acc": metrics.get("val_robust_acc"),
                "train_loss": math.nan,
            }
        )
    for key in STRUCTURE_METRICS:  # known once pruned: secondary objectives may use them
        if _number(metrics.get(key)):
            report[key] = metrics[key]
    report["test"] = {k: metrics[k] for k in TEST_METRICS if _number(metrics.get(k))}
    report["epochs_completed"] = metrics.get("epochs_completed", 0)
    return report


def _quiet_ray_train_logs() -> None:
    """One 'Checkpoint successfully created' line per epoch and trial drowns the progress."""
    for name in ("ray.train", "ray.tune", "ray.train._internal.session"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _set_threads() -> None:
    """Torch should use the CPUs Ray gave this trial, not every core of the node."""
    import ray
    import torch

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))


def _sync_dense(config: dict[str, Any]) -> None:
    """Remote storage: fetch the shared dense models into this node's local cache."""
    remote = config.get("dense_uri")
    if not remote:
        return
    import pyarrow.fs as pafs

    from robprune.atomic_io import file_lock as locked

    local = Path(config["trial"]["cache_dir"]).expanduser()
    if (local / ".synced").exists():
        return
    with locked(local / ".sync.lock"):  # trials sharing a node download once
        if (local / ".synced").exists():
            return
        fs, path = pafs.FileSystem.from_uri(remote)
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return
        pafs.copy_files(
            path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem()
        )
        (local / ".synced").touch()


def train_trial(config: dict[str, Any]) -> None:
    """Tune function trainable: `config["trial"]` is the trial config (CONTRACTS.md)."""
    _quiet_ray_train_logs()
    _set_threads()
    _sync_dense(config)
    trial_config = config["trial"]
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        _run(trial_config, None)
        return
    with checkpoint.as_directory() as resume_dir:
        done = Path(resume_dir, FINAL_DIR, RESULT_FILE)
        if done.is_file():  # finished before the driver saw it: report again, do not rerun
            result = json.loads(done.read_text())
            last = result["epochs"][-1] if result["epochs"] else None
            tune.report(final_report(result, last), checkpoint=checkpoint)
            return
        _run(trial_config, resume_dir)


def _run(trial_config: dict[str, Any], resume_dir: str | None) -> None:
    from robprune.config import parse_trial_config
    from robprune.trial import run_trial

    parsed = parse_trial_config(trial_config)
    ft = parsed.finetune
    total = ft.epochs if ft.method != "none" else 0
    last: dict[str, Any] = {}
    holding = Path(tempfile.mkdtemp(prefix="robprune-final-"))
    try:

        def on_epoch(report: Any) -> None:
            metrics = {k: v for k, v in report.metrics.items() if _number(v)}
            if report.epoch >= total:  # the final report carries it, with the evaluation
                report.save_checkpoint(holding)
                last["metrics"] = metrics
                return
            with tempfile.TemporaryDirectory(prefix="robprune-ckpt-") as tmp:
                report.save_checkpoint(tmp)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

        result = run_trial(
            parsed,
            on_epoch=on_epoch,
            resume=resume_dir,
            log=lambda message: print(message, flush=True),
        )
        result.write(holding / FINAL_DIR)
        payload = json.loads((holding / FINAL_DIR / RESULT_FILE).read_text())
        tune.report(
            final_report(payload, last.get("metrics")),
            checkpoint=tune.Checkpoint.from_directory(str(holding)),
        )
    finally:
        shutil.rmtree(holding, ignore_errors=True)
