"""Parquet tables (docs/results.md) from what Ray Tune stored: rebuilt from scratch every time.

Sources, per trial of every Tune run in EXPERIMENT/tune/: its status and config from the run's
experiment state (a finished trial that state lost: from its own directory,
`search.results.records`); its finished `TrialResult` from the last checkpoint
(`final/result.json`);
for trials without one (failed, stopped early, still running) the per-epoch rows Tune wrote to
the trial's result.json. Rows are sorted and carry no timestamps, so exporting twice gives the
same tables. Factor columns of parameters that did not apply (the temperature under the
uniform rule, beta outside TRADES/MART) are null, never a default.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

import robprune
from robprune.config import parse_trial_config
from robprune.config.factors import factor_values
from robprune.errors import BadInput
from robprune.io.results_schema import (
    EPOCHS_SCHEMA,
    LAYERS_SCHEMA,
    METRIC_COLUMNS,
    TRIALS_SCHEMA,
    table_from_rows,
    write_table_atomic,
)
from search.finalists.store import merge_finalists
from search.results.records import RecordTrial, record_trials
from search.results.rows import TrialRow, TrialSource
from search.results.tensorboard import write_tensorboard
from search.state import storage
from search.state.experiment import Experiment
from search.state.repeats import REPEAT_KEY, REPLAY_FILE
from search.state.trial_files import FINAL_DIR, PROGRESS_FILE, RESULT_FILE

__all__ = [
    "ExportResult",
    "collect_rows",
    "export_experiment",
    "write_results",
    "factor_columns",
    "error_message",
    "tune_analysis",
    "TERMINAL",
]

TERMINAL = ("TERMINATED", "ERROR")
_INT_COLUMNS = {f.name for f in TRIALS_SCHEMA if str(f.type) == "int64"}
_EPOCH_KEYS = ("epoch", "lr", "train_loss", "clean_acc", "robust_acc", "wall_s")
_LAYER_KEYS = tuple(f.name for f in LAYERS_SCHEMA if f.name not in ("experiment", "trial_id"))
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportResult:
    """What one read of Tune's state gave: handed to the later stages so none reads it again.

    `epochs` and `layers` are kept as the rows their Parquet tables are built from (nothing
    in search reads them by name).
    """

    trials: list[TrialRow] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    results_dir: str = ""
    #: per Tune run: its trials that ended (TERMINATED or ERROR) in Tune's record
    ended: dict[str, int] = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for row in self.trials if row.status == status)


def factor_columns(resolved: dict[str, Any]) -> dict[str, Any]:
    """The seed and the design's factors from a resolved trial config; inapplicable ones null."""
    return {"seed": resolved["seed"], **factor_values(resolved)}


def error_message(trial: Any) -> str | None:
    """`Type: message` of the exception that failed a trial, without the traceback."""
    exc = _local_pickled_error(trial)
    if exc is None:
        try:
            exc = trial.get_pickled_error()
        except Exception:  # noqa: BLE001 - unpicklable or unreadable: fall back to the text
            exc = None
    if exc is not None:
        cause = getattr(exc, "cause", None) or exc
        text = str(cause).strip()
        if type(cause).__name__ == "RepeatedTrialFailure" and text:
            return text.splitlines()[0]  # a retry: the message is the first failure
        first = text.splitlines()[0] if text else ""
        return f"{type(cause).__name__}: {first}" if first else type(cause).__name__
    try:
        text = trial.get_error()
    except Exception:  # noqa: BLE001
        text = None
    if not text:
        return "error (no details were saved)" if trial.status == "ERROR" else None
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    candidates = [ln for ln in lines if not ln.startswith(("File ", "Traceback", "^", "~"))]
    return candidates[-1] if candidates else lines[-1]


def _local_pickled_error(trial: Any) -> Any:
    """While the search runs the error is only in the driver's staging dir, not in storage."""
    try:
        path = trial.pickled_error_file
        if path and os.path.exists(path):
            with open(path, "rb") as handle:
                return pickle.load(handle)
    except Exception:  # noqa: BLE001 - no live session (export), or an unpicklable error
        return None
    return None


def _final_result(trial: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The trial's finished `TrialResult` and, where it exists but cannot be read, why.

    A result file that is there but unreadable (cut short, not JSON, unreadable storage) makes
    the trial ERROR with that reason rather than a finished trial without metrics.
    """
    checkpoint = trial.checkpoint
    if checkpoint is None:
        return None, None
    fs, path = checkpoint.filesystem, f"{checkpoint.path}/{FINAL_DIR}/{RESULT_FILE}"
    try:
        result = json.loads(storage.read_text(fs, path))
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"unreadable {FINAL_DIR}/{RESULT_FILE}: {type(exc).__name__}: {exc}"
    if not isinstance(result, dict) or not isinstance(result.get("metrics"), dict):
        return None, f"unreadable {FINAL_DIR}/{RESULT_FILE}: not a trial result"
    return result, None


def _progress(trial: Any) -> dict[str, Any]:
    """The progress file the trainable keeps in every checkpoint (empty if there is none)."""
    checkpoint = trial.checkpoint
    text = None
    if checkpoint is not None:
        text = storage.read_text_or_none(
            checkpoint.filesystem, f"{checkpoint.path}/{PROGRESS_FILE}"
        )
    try:
        data = json.loads(text) if text else {}
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}


def _repeat_of(trial: Any) -> str | None:
    """The original a repeat was answered from; None for a trial that trained (a repeat whose
    original failed trains itself: its numbers are new data and the report must keep them)."""
    ref = (trial.config.get(REPEAT_KEY) or {}).get("trial_id")
    checkpoint = trial.checkpoint
    if ref is None or checkpoint is None:
        return ref  # a repeat still waiting for its original has no checkpoint yet
    replayed = storage.read_text_or_none(checkpoint.filesystem, f"{checkpoint.path}/{REPLAY_FILE}")
    return ref if replayed is not None else None


def _restores(progress: dict[str, Any]) -> dict[str, Any]:
    """`restores` and `restored_from_epoch` from the trial's progress file."""
    restored_from = progress.get("restored_from") or []
    return {
        "restores": len(restored_from),
        "restored_from_epoch": int(restored_from[-1]) if restored_from else None,
    }


def _tune_epochs(trial: Any, progress: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-epoch rows of a trial without a final result (stopped early, failed, unfinished).

    From the newest checkpoint's progress file (complete up to that epoch, whatever a kill cut
    from Tune's result.json), then Tune's result.json for later epochs; a restarted epoch keeps
    its latest report.
    """
    by_epoch: dict[int, dict[str, Any]] = {}
    for row in progress.get("epochs") or []:
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and row["epoch"] >= 1:
            by_epoch[row["epoch"]] = {k: row.get(k) for k in _EPOCH_KEYS}
    # Tune's result.json: a line cut short when the driver was killed is left out
    for row in storage.read_json_lines(
        trial.storage.storage_filesystem, f"{trial.path}/result.json"
    ):
        epoch = row.get("epoch")
        if isinstance(epoch, int) and epoch >= 1:
            by_epoch[epoch] = {k: row.get(k) for k in _EPOCH_KEYS}
    return [by_epoch[e] for e in sorted(by_epoch)]


#: String columns copied from a trial's metrics as they are.
ATTACK_NAME_KEYS = (
    "robust_attack",
    "pgd_attack",
    "cw_attack",
    "autoattack_label",
    "autoattack_n",
    "dense_checkpoint_sha256",
    "strong_suite",
    "strong_label",
)
#: A trial's per-epoch report key -> its epochs.parquet column (validation numbers say so).
_EPOCH_COLUMNS = {"clean_acc": "val_clean_acc", "robust_acc": "val_robust_acc"}


def _threat(attack_config: dict[str, Any], primary: str | None) -> dict[str, Any]:
    """attack_norm and attack_epsilon of the primary attack (the trial's threat model)."""
    settings = attack_config.get(primary or "", {})
    return {"attack_norm": settings.get("norm"), "attack_epsilon": settings.get("epsilon")}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _result_columns(result: dict[str, Any]) -> dict[str, Any]:
    """The trials.parquet columns a finished `TrialResult` fills."""
    metrics = result.get("metrics", {})
    columns: dict[str, Any] = {}
    for key in METRIC_COLUMNS:
        value = _clean(metrics.get(key))
        columns[key] = int(value) if key in _INT_COLUMNS and value is not None else value
    columns["attack_config_json"] = json.dumps(result.get("attack_config", {}), sort_keys=True)
    for key in ATTACK_NAME_KEYS:
        columns[key] = metrics.get(key)
    columns.update(_threat(result.get("attack_config", {}), metrics.get("robust_attack")))
    gap = metrics.get("attack_gap") or {}  # the trial's own; a finalist's replaces it
    columns["attack_gap"], columns["attack_gap_reference"] = gap.get("gap"), gap.get("reference")
    if "masking_flags" in metrics:
        columns["masking_flags_json"] = json.dumps(metrics["masking_flags"])
    return columns


def _source(trial: Any) -> TrialSource | None:
    """A Tune trial's saved model; none for a trial known from its directory alone."""
    if trial.checkpoint is None or isinstance(trial, RecordTrial):
        return None
    return TrialSource(checkpoint=trial.checkpoint, config=trial.config.get("trial", {}))


def _trial_rows(exp: Experiment, trial: Any) -> tuple[TrialRow, list[dict], list[dict]]:
    resolved = parse_trial_config(trial.config.get("trial", {})).to_dict()
    result, unreadable = _final_result(trial)
    progress = _progress(trial)
    status = "ERROR" if unreadable else trial.status
    version = robprune.__version__
    if result is not None:
        metrics = _result_columns(result)
        version = result.get("metrics", {}).get("robprune_version", version)
        epochs, layers = result.get("epochs", []), result.get("layers", [])
    else:
        epochs, layers = _tune_epochs(trial, progress), []
        metrics = {"epochs_completed": len(epochs)}
    row = TrialRow(
        experiment=exp.name,
        trial_id=trial.trial_id,
        status=status,
        error=unreadable or (error_message(trial) if status == "ERROR" else None),
        repeat_of=_repeat_of(trial),
        factors=factor_columns(resolved),
        metrics=metrics,
        provenance={
            "config_json": json.dumps(resolved, sort_keys=True),
            "robprune_version": version,
            **_restores(progress),
            "val_robust_attack": resolved.get("eval", {}).get("epoch_attack"),
        },
        source=_source(trial),
    )
    base = {"experiment": exp.name, "trial_id": trial.trial_id}
    epoch_rows = [
        {**base, **{_EPOCH_COLUMNS.get(k, k): _clean(e.get(k)) for k in _EPOCH_KEYS}}
        for e in epochs
    ]
    layer_rows = [{**base, **{k: _clean(lay.get(k)) for k in _LAYER_KEYS}} for lay in layers]
    return row, epoch_rows, layer_rows


def tune_analysis(location: str, fs: pafs.FileSystem | None) -> Any | None:
    """Tune's newest snapshot of the run, for its trials (their results are read from each
    trial's own files, so Tune's reading of every result.json is left out)."""
    from search.run.tune_internals import SnapshotTrials

    try:
        return SnapshotTrials(location, storage_filesystem=fs)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as exc:
        log.debug("no Tune state at %s: %s", location, exc)
        return None


def collect_rows(exp: Experiment) -> ExportResult:
    """Every trial of every run of the experiment, each exactly once, sorted: the one read
    of Tune's state an export makes."""
    found: list[tuple[int, TrialRow]] = []
    epochs: list[dict[str, Any]] = []
    layers: list[dict[str, Any]] = []
    ended: dict[str, int] = {}
    seen: set[str] = set()
    for index, segment in enumerate(exp.segments):
        path, fs = storage.tune_storage(exp, segment.name)
        analysis = tune_analysis(path, fs)
        trials = list(analysis.trials) if analysis is not None else []
        # finished trials Tune's snapshot lost (a run rebuilt from the records) come from
        # their own directories: a resume never exports fewer trials than ended
        run_fs, run_path = (fs, path) if fs is not None else (storage.LOCAL, path)
        dirs = {str(t.path).rstrip("/").rsplit("/", 1)[-1] for t in trials}
        trials += record_trials(run_fs, run_path, {t.trial_id for t in trials}, dirs)
        trials.sort(key=lambda t: t.trial_id)
        for trial in trials:
            if trial.trial_id in seen:  # ids are unique per run; guard against a mixed dir
                continue
            seen.add(trial.trial_id)
            row, trial_epochs, trial_layers = _trial_rows(exp, trial)
            if row.status in TERMINAL:
                ended[segment.name] = ended.get(segment.name, 0) + 1
            found.append((index, row))
            epochs.extend(trial_epochs)
            layers.extend(trial_layers)
    found.sort(key=lambda item: (item[0], item[1].trial_id))
    rows = [row for _, row in found]
    order = {r.trial_id: i for i, r in enumerate(rows)}
    epochs.sort(key=lambda r: (order[r["trial_id"]], r["epoch"]))
    layers.sort(key=lambda r: order[r["trial_id"]])  # stable: keeps the model's layer order
    return ExportResult(trials=rows, epochs=epochs, layers=layers, ended=ended)


def _remove_stale_staging(parent: Path, age_s: float = 60.0) -> None:
    """Staging directories of exports that were killed (older than `age_s`, so not a
    concurrent export's)."""
    now = time.time()
    for stale in parent.glob(".results-staging-*"):
        try:
            if stale.is_dir() and now - stale.stat().st_mtime > age_s:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            continue


def export_experiment(exp: Experiment, *, tensorboard: bool = True) -> ExportResult:
    """Rewrite EXPERIMENT/results/{trials,epochs,layers}.parquet (and tensorboard/)."""
    return write_results(exp, collect_rows(exp), tensorboard=tensorboard)


def write_results(
    exp: Experiment, collected: ExportResult, *, tensorboard: bool = True
) -> ExportResult:
    """Write the tables of rows already collected, with the finalists' stored results merged
    in: after the finalists stage the rows in hand are written again, Tune not read again."""
    rows = replace(collected, trials=merge_finalists(exp, collected.trials))
    if not exp.segments:
        raise BadInput(f"{exp.location}: the experiment has no runs yet")
    trials = [row.to_row() for row in rows.trials]  # the storage boundary: pyarrow's rows
    tables = {
        "trials.parquet": table_from_rows(trials, TRIALS_SCHEMA),
        "epochs.parquet": table_from_rows(rows.epochs, EPOCHS_SCHEMA),
        "layers.parquet": table_from_rows(rows.layers, LAYERS_SCHEMA),
    }
    parent = Path(exp.location) if not exp.remote else None
    if parent is not None:
        _remove_stale_staging(parent)
    staging = Path(tempfile.mkdtemp(prefix=".results-staging-", dir=parent))
    try:
        for name, table in tables.items():
            write_table_atomic(table, staging / name)
        if tensorboard:
            write_tensorboard(trials, rows.epochs, staging / "tensorboard")
        results_dir = storage.replace_dir(exp, "results", staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return replace(rows, results_dir=results_dir)
