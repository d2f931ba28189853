"""EXPERIMENT/status.json: the search's progress, written to the experiment's storage as it runs.

`robprune status` reads it from anywhere that can reach the storage (a laptop, with the
experiment on S3), so it holds counts and the best validation value, nothing secret: no
environment, no storage options, no configs beyond the best trial's id. The driver writes it
from a Tune callback (`search.run.status_callback.StatusFileCallback`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from robprune.io.results_schema import TRIAL_STATES
from search.state import storage

__all__ = ["STATUS_FILE", "LiveStatus", "read_status", "status_payload"]

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


@dataclass(frozen=True)
class LiveStatus:
    """What status.json said, for `robprune status`: the run's counts while no table exists."""

    #: when the driver wrote it (seconds since the epoch)
    updated: float | None = None
    #: the trials the run plans (a grid's cells x seeds); None when not said
    total: int | None = None
    #: trials by state (`TRIAL_STATES`' words), as the file counts them
    trials: dict[str, Any] = field(default_factory=dict)
    #: `{"metric", "mode", "value", "trial_id"}` of the best validation value so far
    best_validation: dict[str, Any] | None = None
    #: `{"trial_id", "error"}` of the last failed trial
    last_error: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LiveStatus:
        return cls(
            updated=data.get("updated"),
            total=int(data["total"]) if data.get("total") else None,
            trials=dict(data.get("trials") or {}),
            best_validation=data.get("best_validation") or None,
            last_error=data.get("last_error") or None,
        )


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


def read_status(location: str) -> LiveStatus | None:
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
        return LiveStatus.from_json(data)
    return LiveStatus.from_json(data) if data.get("format") == _FORMAT else None
