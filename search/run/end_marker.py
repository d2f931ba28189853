"""The end marker: a trial's own durable record that it ended, and with which result.

The driver writes `robprune-end.json` into a trial's directory the moment Tune ends the trial
(`EndMarkerCallback`), and the reconciliation before a resume writes it for every trial it
finds finished in another record (Tune's snapshot, a `final/` checkpoint, the Optuna journal),
so that the records agree afterwards: a repeat of that trial (`search.run.dedupe`) reads the
marker, not Tune's snapshot or the journal, which a trial's worker cannot see.
"""

from __future__ import annotations

import json
from typing import Any

from ray import tune

from search.state import storage

__all__ = ["END_MARKER", "EndMarkerCallback", "marker_text", "read_marker"]

#: Written into a trial's directory when the trial ends (TERMINATED or ERROR).
END_MARKER = "robprune-end.json"
_KEPT_METRICS = ("epoch", "epochs_completed", "robust_acc", "clean_acc", "train_loss")


def marker_text(status: str, metrics: dict[str, Any], keep: list[str], why: str = "") -> str:
    """The marker's JSON: the status and the numeric metrics of `keep` (plus the usual)."""
    kept = {*keep, *_KEPT_METRICS}
    result = {k: v for k, v in metrics.items() if k in kept and isinstance(v, int | float)}
    payload: dict[str, Any] = {"status": status, "result": result}
    if why:
        payload["why"] = why
    return json.dumps(payload, sort_keys=True) + "\n"


def read_marker(fs: Any, trial_dir: str) -> dict[str, Any] | None:
    """The trial's end marker, or None when it is missing or torn (a kill mid-write)."""
    text = storage.read_text_or_none(fs, f"{trial_dir}/{END_MARKER}")
    try:
        marker = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return marker if isinstance(marker, dict) and "status" in marker else None


class EndMarkerCallback(tune.Callback):
    """Records in the trial's directory that it ended, the moment Tune decides it.

    Tune's snapshot may be seconds old when the driver dies; the marker is the durable record
    that a trial finished (including one stopped early by ASHA, which has no `final/`). A
    marker that cannot be written is a storage fault (`search.run.storage_fault`): the search
    stops rather than leave a repeat of the trial waiting for it.
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
        storage.write_text(fs, f"{root}/{rel}", text)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, "TERMINATED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, "ERROR")
