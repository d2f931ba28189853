"""Trials the export finds in their own directories when Tune's snapshot does not list them.

A run rebuilt from robprune's records (its Tune snapshot lost, cut short or unrestorable) is a
new Tune run in the same directory: trials that had finished before are in no snapshot any
more, but their directories hold all a row needs (the end marker's status, the final
checkpoint's `TrialResult`, Tune's `params.json` config). `record_trials` gives them as
objects with the attributes the export reads of a Tune trial. An unfinished directory is left
out: its Optuna trial was handed out again and a trial of the new run continues it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from search.run.trial_record import TrialRecord
from search.state import storage
from search.state.trial_files import FINAL_DIR, RESULT_FILE

__all__ = ["RecordTrial", "record_trials"]

_TRIAL = re.compile(r"^trial_(.+)$")


@dataclass(frozen=True)
class _Checkpoint:
    path: str
    filesystem: Any


@dataclass(frozen=True)
class _Storage:
    storage_filesystem: Any


@dataclass
class RecordTrial:
    """A finished trial known from its directory alone (the export's view of a Tune trial)."""

    trial_id: str
    status: str
    config: dict[str, Any]
    path: str
    storage: _Storage
    checkpoint: _Checkpoint | None
    error_text: str | None = None
    pickled_error_file: None = field(default=None, init=False)

    def get_pickled_error(self) -> None:
        return None

    def get_error(self) -> str | None:
        return self.error_text


def _config(fs: Any, trial_dir: str, checkpoint: str | None) -> dict[str, Any] | None:
    text = storage.read_text_or_none(fs, f"{trial_dir}/params.json")
    try:
        params = json.loads(text) if text else None
    except ValueError:
        params = None
    if isinstance(params, dict) and "trial" in params:
        return params
    result = storage.read_text_or_none(fs, f"{checkpoint}/{FINAL_DIR}/{RESULT_FILE}")
    try:
        resolved = json.loads(result)["config"] if result else None
    except (ValueError, KeyError, TypeError):
        resolved = None
    return {"trial": resolved} if isinstance(resolved, dict) else None


def _one(fs: Any, trial_dir: str, trial_id: str) -> RecordTrial | None:
    record = TrialRecord(fs, trial_dir)
    newest = f"{trial_dir}/{record.checkpoints[-1]}" if record.checkpoints else None
    marker = record.marker
    final = newest and storage.read_text_or_none(fs, f"{newest}/{FINAL_DIR}/{RESULT_FILE}")
    status = str(marker["status"]) if marker else ("TERMINATED" if final else "")
    if status not in ("TERMINATED", "ERROR"):
        return None  # unfinished: continued by a trial of the rebuilt run
    config = _config(fs, trial_dir, newest)
    if config is None:
        return None
    error = storage.read_text_or_none(fs, f"{trial_dir}/error.txt") if status == "ERROR" else None
    return RecordTrial(
        trial_id=trial_id,
        status=status,
        config=config,
        path=trial_dir,
        storage=_Storage(fs),
        checkpoint=_Checkpoint(newest, fs) if newest else None,
        error_text=error or (marker or {}).get("why"),
    )


def record_trials(
    fs: Any, run_path: str, known: set[str], known_dirs: set[str] | None = None
) -> list[RecordTrial]:
    """Finished trials of the run at `run_path` that are not in `known` (Tune's snapshot's
    trial ids) and whose folders are not in `known_dirs` (the folders of those trials: Tune
    suffixes the folder of a trial whose own name is taken, `trial_ID_abcd`, as when a grid
    trial that a stale snapshot lost is made again on resume)."""
    out = []
    for info in storage.listing(fs, run_path):
        match = _TRIAL.match(info.base_name)
        if match and match.group(1) not in known and info.base_name not in (known_dirs or ()):
            found = _one(fs, f"{run_path}/{info.base_name}", match.group(1))
            if found is not None:
                out.append(found)
    return out
