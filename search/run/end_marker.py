"""The end marker: a trial's own durable record that it ended, and with which result.

The driver writes `robprune-end.json` into a trial's directory the moment Tune ends the trial
(`EndMarkerCallback`), and the reconciliation before a resume writes it for every trial it
finds finished in another record (Tune's snapshot, a `final/` checkpoint, the Optuna journal),
so that the records agree afterwards: a repeat of that trial (`search.run.repeat_answer`) reads the
marker, not Tune's snapshot or the journal, which a trial's worker cannot see.
"""

from __future__ import annotations

import json
from typing import Any

from ray import tune

from search.run.storage_fault import post_driver_fault
from search.state import storage
from search.state.trial_files import END_MARKER, read_marker

__all__ = ["END_MARKER", "EndMarkerCallback", "marker_text", "read_marker"]

_KEPT_METRICS = ("epoch", "epochs_completed", "robust_acc", "clean_acc", "train_loss")


def marker_text(status: str, metrics: dict[str, Any], keep: list[str], why: str = "") -> str:
    """The marker's JSON: the status and the numeric metrics of `keep` (plus the usual)."""
    kept = {*keep, *_KEPT_METRICS}
    result = {k: v for k, v in metrics.items() if k in kept and isinstance(v, int | float)}
    payload: dict[str, Any] = {"status": status, "result": result}
    if why:
        payload["why"] = why
    return json.dumps(payload, sort_keys=True) + "\n"


class EndMarkerCallback(tune.Callback):
    """Records in the trial's directory that it ended, the moment Tune decides it.

    Tune's snapshot may be seconds old when the driver dies; the marker is the durable record
    that a trial finished (including one stopped early by ASHA, which has no `final/`). A
    marker that cannot be written for a storage fault stops the search
    (`search.run.storage_fault`); the reconciliation writes it on resume.
    """

    def __init__(self, location: str, run: str, metrics: list[str]):
        self.location = location
        self.run = run
        self.metrics = list(metrics)
        self._fs: tuple[Any, str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None}  # a filesystem handle does not travel

    def _write(self, trial: Any, status: str) -> None:
        text = marker_text(status, trial.last_result or {}, self.metrics)
        self._fs = self._fs or storage.filesystem(self.location)
        fs, root = self._fs
        rel = f"tune/{self.run}/{trial.storage.trial_dir_name}/{END_MARKER}"
        try:
            storage.write_text(fs, f"{root}/{rel}", text)
        except OSError as exc:  # raising here would end the trial as ERROR: a false result
            if not post_driver_fault(exc):
                print(f"warning: could not record the end of {trial.trial_id}: {exc}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, "TERMINATED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, "ERROR")
