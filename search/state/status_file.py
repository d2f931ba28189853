"""EXPERIMENT/status.json: the search's progress, written to the experiment's storage as it runs.

`robprune status` reads it from anywhere that can reach the storage (a laptop, with the
experiment on S3), so it holds counts and the best validation value, nothing secret: no
environment, no storage options, no configs beyond the best trial's id.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from ray import tune

from robprune.io.results_schema import TRIAL_STATES
from search.state import storage

__all__ = ["STATUS_FILE", "StatusFileCallback", "read_status", "status_callback", "status_payload"]

STATUS_FILE = "status.json"
_FORMAT = "robprune.status/2"
#: status.json/1 counted trials as completed/failed/running/pending: read as TRIAL_STATES.
_FORMAT_1 = "robprune.status/1"
_WORDS_1 = {
    "completed": "TERMINATED",
    "failed": "ERROR",
    "running": "RUNNING",
    "pending": "PENDING",
}


def status_payload(
    trials: list[Any],
    *,
    metric: str,
    mode: str,
    total: int | None,
    run: str,
    state: str,
    overrides: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Counts by state (the trials table's words, `TRIAL_STATES`) and the best validation
    value of `metric` among the trials so far."""
    overrides = overrides or {}
    counts = Counter(overrides.get(t.trial_id, t.status) for t in trials)
    counts["PENDING"] += counts.pop("PAUSED", 0)
    best: dict[str, Any] | None = None
    for t in trials:
        value = _last_result(t).get(metric)
        if not isinstance(value, (int, float)):
            continue
        if best is None or (value > best["value"] if mode == "max" else value < best["value"]):
            best = {"metric": metric, "mode": mode, "value": float(value), "trial_id": t.trial_id}
    return {
        "format": _FORMAT,
        "run": run,
        "state": state,
        "updated": time.time(),
        "total": total if total else len(trials),
        "trials": {state: counts.get(state, 0) for state in TRIAL_STATES},
        "best_validation": best,
    }


def _last_result(trial: Any) -> dict[str, Any]:
    """The trial's last reported result, read where Tune keeps it: `Trial.last_result` builds
    a set of the result's keys on every access (and may wait for a default result), which made
    a status write cost O(trials x keys) and the search's status writes quadratic in trials."""
    metadata = getattr(trial, "run_metadata", None)
    result = getattr(metadata, "last_result", None)
    if result is None:
        result = trial.last_result
    return result or {}


class StatusFileCallback(tune.Callback):
    """Rewrites EXPERIMENT/status.json on trial events, at most every `min_gap_s` (an event
    inside the gap is written at the next step after it), and at least every `every_s`."""

    #: Seconds between two writes on trial events: each write reads every trial, so one per
    #: event made the writes quadratic in the trials (two events a trial).
    min_gap_s = 1.0

    def __init__(
        self,
        location: str,
        *,
        metric: str,
        mode: str,
        total: int | None,
        run: str,
        every_s: float = 10.0,
    ):
        self.location = location
        self.metric, self.mode, self.total, self.run = metric, mode, total, run
        self.every_s = every_s
        self._last = 0.0
        self._pending = False
        self._fs: tuple[Any, str] | None = None
        self.last_error: dict[str, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_fs"] = None  # a filesystem handle does not travel in Tune's snapshot
        return state

    def _write(self, trials: list[Any], state: str, overrides: dict[str, str] | None = None):
        try:
            self._fs = self._fs or storage.filesystem(self.location)
            payload = status_payload(
                trials,
                metric=self.metric,
                mode=self.mode,
                total=self.total,
                run=self.run,
                state=state,
                overrides=overrides,
            )
            payload["last_error"] = self.last_error
            fs, root = self._fs
            storage.write_text(fs, f"{root}/{STATUS_FILE}", json.dumps(payload, indent=2) + "\n")
            self._last = time.monotonic()
            self._pending = False
        except Exception:  # noqa: BLE001 - progress reporting must never fail the search
            pass

    def _event(self, trials: list, overrides: dict[str, str]) -> None:
        if time.monotonic() - self._last >= self.min_gap_s:
            self._write(trials, "running", overrides)
        else:
            self._pending = True  # written by the first step end after the gap

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._event(trials, {trial.trial_id: "RUNNING"})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._event(trials, {trial.trial_id: "TERMINATED"})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        from search.results.export import error_message  # lazily: results/ reads state/

        try:
            message = error_message(trial)
        except Exception:  # noqa: BLE001 - progress reporting must never fail the search
            message = None
        self.last_error = {
            "trial_id": trial.trial_id,
            "error": message or "see error.txt in the trial directory",
            "time": time.time(),
        }
        self._write(trials, "running", {trial.trial_id: "ERROR"})

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        since = time.monotonic() - self._last
        if since >= self.every_s or (self._pending and since >= self.min_gap_s):
            self._write(trials, "running")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        done = all(t.status in ("TERMINATED", "ERROR") for t in trials)
        self._write(trials, "finished" if done else "interrupted")


def read_status(location: str) -> dict[str, Any] | None:
    """The experiment's status.json, or None before the search has written one."""
    fs, root = storage.filesystem(storage.resolve_location(location))
    try:
        text = storage.read_text(fs, f"{root}/{STATUS_FILE}")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None  # caught between a truncated upload and the next write
    if data.get("format") == _FORMAT_1:
        counts = data.get("trials") or {}
        data = {**data, "trials": {new: counts.get(old, 0) for old, new in _WORDS_1.items()}}
        return data
    return data if data.get("format") == _FORMAT else None


def status_callback(spec: Any, exp: Any, segment: Any, total: int | None) -> StatusFileCallback:
    """The callback for one Tune run of an experiment (its primary objective, its size)."""
    primary = spec.search.primary
    return StatusFileCallback(
        exp.location, metric=primary.metric, mode=primary.mode, total=total, run=segment.name
    )
