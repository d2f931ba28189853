"""Where a restarted trial continues: the newest whole checkpoint in the trial's own folder.

Tune hands a restarted trial the checkpoint its experiment snapshot names. That snapshot is a
cache, seconds to minutes behind the trial: it can name a checkpoint that the trial deleted
since (it keeps its newest few, `search/run/checkpoint_keep.py`), and it never names the
newer checkpoints a killed driver did not register. The trial's folder on storage is the
truth, so the restart continues from the newest checkpoint there that is whole (its files
match its manifest and its `trial_state.pt` loads, or it holds the finished result), whatever
the snapshot says, and from the start when there is none. A trial that continues another
(a run rebuilt from the records, `search/run/continuation.py`) looks in both folders, and a
trial Tune put in a suffixed folder also in its namesake (`trial_folders`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from ray import tune

from robprune.errors import BadInput
from robprune.trial.checkpoint import CHECKPOINT_FILE, load_checkpoint
from search.run.continuation import CONTINUE_KEY
from search.state import storage
from search.state.checkpoints import CHECKPOINT_DIR, MANIFEST, is_whole
from search.state.trial_files import FINAL_DIR, PROGRESS_FILE, RESULT_FILE

__all__ = ["ResumePoint", "describe", "resume_point"]


@dataclass(frozen=True, kw_only=True)
class ResumePoint:
    """A whole checkpoint, opened as a local directory."""

    directory: str
    checkpoint: tune.Checkpoint
    finished: bool  # it holds `final/result.json`: report it again, train nothing


def trial_folders(own: str, experiment: str, trial_id: str, earlier: str | None) -> list[str]:
    """Where a trial's checkpoints can be, its own folder first: the folder of the trial it
    continues, and its namesake `trial_ID` when Tune gave it a suffixed one (`trial_ID_abcd`:
    the name was taken, as by a grid trial made again on resume that a stale snapshot lost)."""
    root = experiment.rstrip("/")
    folders = [own]
    for name in (earlier, f"trial_{trial_id}" if trial_id else None):
        if name and f"{root}/{name}" not in folders:
            folders.append(f"{root}/{name}")
    return folders


def _folders(config: dict[str, Any]) -> tuple[pafs.FileSystem, list[str]] | None:
    """The trial's folders on storage (`trial_folders`)."""
    try:
        context = tune.get_context().get_storage()
        trial_id = tune.get_context().get_trial_id() or ""
    except Exception:  # noqa: BLE001 - outside a Tune session (unit use): the handed one only
        return None
    earlier = (config.get(CONTINUE_KEY) or {}).get("trial_dir_name")
    own, experiment = context.trial_fs_path, context.experiment_fs_path
    return context.storage_filesystem, trial_folders(own, experiment, trial_id, earlier)


def _rank(fs: pafs.FileSystem, path: str) -> tuple[int, int] | None:
    """(finished, epoch) of a checkpoint on storage that looks whole; None when it is not."""
    if storage.read_text_or_none(fs, f"{path}/{FINAL_DIR}/{RESULT_FILE}"):
        return (1, 0)
    if not storage.is_file(fs, f"{path}/{CHECKPOINT_FILE}"):
        return None
    if storage.is_file(fs, f"{path}/{MANIFEST}") and not is_whole(fs, path):
        return None  # a copy a fault cut short
    try:
        epoch = int(
            json.loads(storage.read_text_or_none(fs, f"{path}/{PROGRESS_FILE}") or "")["epoch"]
        )
    except (ValueError, KeyError, TypeError):
        return None
    return (0, epoch)


def _candidates(handed: tune.Checkpoint | None, config: dict[str, Any]) -> list[tune.Checkpoint]:
    """Whole-looking checkpoints, newest first (finished, then highest epoch, own folder first,
    then index)."""
    found: dict[str, tuple[tuple[int, ...], tune.Checkpoint]] = {}
    located = _folders(config)
    if located is not None:
        fs, folders = located
        for index, folder in enumerate(folders):
            own = 1 if index == 0 else 0
            for info in storage.listing(fs, folder):
                match = CHECKPOINT_DIR.match(info.base_name)
                rank = _rank(fs, info.path) if match else None
                if match and rank is not None:
                    key = (*rank, own, int(match.group(1)))
                    found[info.path] = (key, tune.Checkpoint(info.path, filesystem=fs))
    if handed is not None and handed.path not in found:
        rank = _rank(handed.filesystem, handed.path)
        if rank is not None:
            found[handed.path] = ((*rank, 1, -1), handed)
    return [ckpt for _, ckpt in sorted(found.values(), key=lambda kv: kv[0], reverse=True)]


def _loads(directory: str) -> bool:
    if Path(directory, FINAL_DIR, RESULT_FILE).is_file():
        try:
            json.loads(Path(directory, FINAL_DIR, RESULT_FILE).read_text())
            return True
        except (OSError, ValueError):
            return False
    try:
        load_checkpoint(directory)
        return True
    except (BadInput, OSError, RuntimeError, ValueError, KeyError, EOFError):
        return False  # a copy a kill cut short


@contextmanager
def resume_point(
    handed: tune.Checkpoint | None, config: dict[str, Any]
) -> Iterator[ResumePoint | None]:
    """The newest whole checkpoint of this trial, opened; None: start from the beginning."""
    for checkpoint in _candidates(handed, config):
        with checkpoint.as_directory() as directory:
            if not _loads(directory):
                continue
            finished = Path(directory, FINAL_DIR, RESULT_FILE).is_file()
            yield ResumePoint(directory=directory, checkpoint=checkpoint, finished=finished)
            return
    yield None


def describe(point: ResumePoint | None, handed: Any) -> str | None:
    """A log line when the trial does not continue from the checkpoint Tune handed it."""
    if handed is None and point is None:
        return None
    if point is not None and handed is not None and point.checkpoint.path == handed.path:
        return None
    where = f"from {point.checkpoint.path}" if point else "from the start"
    named = handed.path if handed is not None else "none"
    return f"resume: continuing {where} (Tune's snapshot named {named})"
