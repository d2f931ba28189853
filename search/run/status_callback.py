"""The Tune callback that writes EXPERIMENT/status.json as the search runs (the file's format
and its reading are `search.state.status_file`'s)."""

from __future__ import annotations

import json
import time
from typing import Any

from ray import tune

from search.results.export import error_message
from search.state import storage
from search.state.status_file import STATUS_FILE, status_payload

__all__ = ["StatusFileCallback", "status_callback"]


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


def status_callback(spec: Any, exp: Any, segment: Any, total: int | None) -> StatusFileCallback:
    """The callback for one Tune run of an experiment (its primary objective, its size)."""
    primary = spec.search.primary
    return StatusFileCallback(
        exp.location, metric=primary.metric, mode=primary.mode, total=total, run=segment.name
    )
