"""Optuna tells from outside the searcher, and edits of Tune's experiment snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from ray import tune
from ray.train._internal.session import _TrainingResult
from ray.tune.experiment.trial import Trial

from search.run.study import FAIL_REASON_ATTR, open_storage

__all__ = [
    "tell_trial",
    "fail_trial",
    "finalize_study",
    "snapshot_trial",
    "snapshot_entry",
    "register_checkpoint",
    "record_error_files",
]


# ------------------------------------------------------------------------------ the study


def tell_trial(study: Any, frozen: Any, values: list[float] | None, why: str) -> None:
    """Finish an Optuna trial asked elsewhere: COMPLETE with `values`, or FAIL (values None)
    with `why` in its `fail_reason` user attribute (else in `reconciled`)."""
    attr = FAIL_REASON_ATTR if values is None else "reconciled"
    optuna.trial.Trial(study, frozen._trial_id).set_user_attr(attr, why)
    if values is None:
        study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(frozen.number, values if len(values) > 1 else values[0])


def fail_trial(study: Any, frozen: Any, why: str) -> None:
    """FAIL a stale Optuna trial (one no Tune trial will finish), saying why."""
    tell_trial(study, frozen, None, why)


def finalize_study(journal: str | Path, study_name: str) -> int:
    """Close Optuna trials that no Tune trial will ever finish (asked just before a crash).

    Called when no search is running. Returns how many were marked FAIL.
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(journal))
    except KeyError:
        return 0
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for frozen in stale:
        fail_trial(study, frozen, "still RUNNING when its run ended: no Tune trial finished it")
    return len(stale)


# ------------------------------------------------------------------------------ Tune's snapshot


def snapshot_trial(entry: list[Any]) -> Any:
    """A Tune `Trial` from one `trial_data` entry of Tune's experiment_state-*.json."""
    trial = Trial.from_json_state(entry[0], stub=True)
    trial.restore_run_metadata(entry[1])
    trial.stub = False
    return trial


def snapshot_entry(trial: Any) -> list[Any]:
    """The `trial_data` entry of a changed trial, to write back into the snapshot."""
    trial.invalidate_json_state()
    return list(trial.get_json_state())


def register_checkpoint(trial: Any, name: str, rows: list[dict[str, Any]]) -> None:
    """Make checkpoint `name` the trial's latest, as Tune's own bookkeeping would."""
    metrics = next((r for r in reversed(rows) if r.get("checkpoint_dir_name") == name), None)
    metrics = dict(metrics or {"checkpoint_dir_name": name})
    path = f"{trial.storage.trial_fs_path}/{name}"
    result = _TrainingResult(
        checkpoint=tune.Checkpoint(path, filesystem=trial.storage.storage_filesystem),
        metrics=metrics,
    )
    manager = trial.run_metadata.checkpoint_manager
    manager._checkpoint_results.append(result)
    manager._latest_checkpoint_result = result
    trial.storage._update_checkpoint_index(metrics)
    if len(metrics) > 1:
        trial.run_metadata.last_result = metrics
    trial.run_metadata.invalidate_cache()
    trial.invalidate_json_state()


def record_error_files(trial: Any, names: set[str]) -> None:
    """Point the trial at Tune's own error files, where Tune wrote them before the stop."""
    if "error.txt" in names:
        trial.run_metadata.error_filename = "error.txt"
    if "error.pkl" in names:
        trial.run_metadata.pickled_error_filename = "error.pkl"
