"""Tune's own state files of a run, checked before `Tuner.restore` reads them.

Tune saves its experiment snapshot (`experiment_state-SESSION.json`), its search generator
(`search_gen_state-SESSION.json`, or `basic-variant-state-SESSION.json` for a grid) and the
searcher (`searcher-state-SESSION.pkl`) in the driver's staging directory and copies them to
the experiment's storage, one file at a time. A driver killed during that copy leaves a file
cut short. Tune reads the newest of each by name; on an unreadable one it logs "Failed to
restore the run state" and starts the run again with `num_samples=1` (it passes no sample
count on restore): a run of 8 trials silently became 1. A file cut short is therefore set
aside (renamed with a leading `.cut-short-`, which Tune's patterns do not match), so Tune
reads the newest complete one, and a run with no complete snapshot is started afresh.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from typing import Any

import pyarrow.fs as pafs
import ray.cloudpickle as cloudpickle

__all__ = [
    "STATE_FILE",
    "grid_generator_disagrees",
    "repair_run_state",
    "reopen_search",
    "set_aside_snapshot",
    "settle_grid_generator",
]

STATE_FILE = re.compile(r"^experiment_state-.*\.json$")
_SEARCH_STATE = re.compile(r"^(search_gen_state|basic-variant-state)-.*\.json$")
_SEARCHER_STATE = re.compile(r"^searcher-state-.*\.pkl$")
SET_ASIDE = ".cut-short-"


def _json(data: bytes) -> Any:
    return json.loads(data.decode())


def _cloudpickle(data: bytes) -> Any:
    return cloudpickle.loads(data)


def _readable(fs: pafs.FileSystem, path: str, load: Callable[[bytes], Any]) -> bool:
    try:
        with fs.open_input_stream(path) as handle:
            data = handle.read()
        load(data)
        return bool(data)
    except Exception:  # noqa: BLE001 - any failure to load is a file Tune cannot use either
        return False


def _keep_newest_readable(
    fs: pafs.FileSystem, run_path: str, names: list[str], load: Callable[[bytes], Any]
) -> tuple[str | None, list[str]]:
    """(the newest readable file, the newer ones set aside)."""
    aside = []
    for name in sorted(names, reverse=True):
        path = f"{run_path}/{name}"
        if _readable(fs, path, load):
            return name, aside
        fs.move(path, f"{run_path}/{SET_ASIDE}{name}")
        aside.append(name)
    return None, aside


def repair_run_state(fs: pafs.FileSystem, run_path: str) -> tuple[bool, list[str]]:
    """Set aside the state files a kill cut short. Returns (whether Tune can restore the
    run from what is left, the names set aside)."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(run_path, allow_not_found=True))
    except OSError:
        return False, []
    names = [i.base_name for i in infos if i.type == pafs.FileType.File]
    state, aside = _keep_newest_readable(
        fs, run_path, [n for n in names if STATE_FILE.match(n)], _json
    )
    search, more = _keep_newest_readable(
        fs, run_path, [n for n in names if _SEARCH_STATE.match(n)], _cloudpickle
    )
    searcher, most = _keep_newest_readable(
        fs, run_path, [n for n in names if _SEARCHER_STATE.match(n)], pickle.loads
    )
    has_searcher = any(_SEARCHER_STATE.match(n) for n in names)
    restorable = state is not None and search is not None and (bool(searcher) or not has_searcher)
    return restorable, aside + more + most


def set_aside_snapshot(fs: pafs.FileSystem, run_path: str, prefix: str = ".unrestorable-") -> int:
    """Tune could not restore from its snapshot: every state file renamed aside (kept for a
    post-mortem); the run is then rebuilt from robprune's records. Returns how many."""
    moved = 0
    for info in _listing(fs, run_path):
        name = info.base_name
        if any(p.match(name) for p in (STATE_FILE, _SEARCH_STATE, _SEARCHER_STATE)):
            fs.move(f"{run_path}/{name}", f"{run_path}/{prefix}{name}")
            moved += 1
    return moved


def reopen_search(fs: pafs.FileSystem, run_path: str) -> bool:
    """Clear the search generator's `finished` flag in the state Tune will restore.

    The flag records that the searcher once answered FINISHED (every planned trial accounted
    for in the journal). Reconciliation can take a trial back (one the stored journal never
    recorded), and a generator restored as finished would never ask for its replacement: the
    run ended short. The searcher answers FINISHED again when the journal says so.
    Returns whether the flag was set.
    """

    def reopen(state: dict[str, Any]) -> bool:
        if not state.get("finished"):
            return False
        state["finished"] = False
        return True

    return _rewrite_search_state(fs, run_path, "search_gen_state-", reopen)


def settle_grid_generator(fs: pafs.FileSystem, run_path: str, live: set[str]) -> list[str]:
    """Forget, in a grid's saved generator, the trials that are no longer live.

    Tune's grid generator counts the trials it handed out and has not seen end
    (`_live_trials`) against `max_concurrent_trials`. A trial that ended after the snapshot
    was saved, and that reconciliation therefore marked ended in the snapshot, is never
    reported to the restored generator again: it would hold a slot forever, and with every
    slot held the resumed run waits without end. `live` is the set of trial ids the
    reconciled snapshot leaves unfinished. Returns the ids forgotten.
    """
    forgotten: list[str] = []

    def settle(state: dict[str, Any]) -> bool:
        held = set(state.get("_live_trials") or ())
        forgotten.extend(sorted(held - live))
        state["_live_trials"] = held & live
        return bool(forgotten)

    _rewrite_search_state(fs, run_path, "basic-variant-state-", settle)
    return forgotten


def grid_generator_disagrees(fs: pafs.FileSystem, run_path: str, snapshot_trials: int) -> bool:
    """Whether the grid's saved generator has made another number of trials than the saved
    experiment snapshot lists.

    On object storage the two files are uploaded one after the other; a head lost in between
    leaves a generator that already made trials the snapshot never lists (restored, they would
    never run: cells missing from the results) or one behind it (it would make trials again).
    Such a snapshot is not restored; the run is rebuilt from robprune's records.
    """
    infos = [i for i in _listing(fs, run_path) if _SEARCH_STATE.match(i.base_name)]
    newest = max((i.base_name for i in infos), default=None)
    if newest is None or not newest.startswith("basic-variant-state-"):
        return False
    with fs.open_input_stream(f"{run_path}/{newest}") as handle:
        state = cloudpickle.loads(handle.read())
    iterators = state.get("_iterators") if isinstance(state, dict) else None
    if not iterators:
        return False
    made = sum(int(getattr(it, "counter", 0)) for it in iterators)
    return made != snapshot_trials


def _rewrite_search_state(
    fs: pafs.FileSystem, run_path: str, prefix: str, edit: Callable[[dict[str, Any]], bool]
) -> bool:
    """Apply `edit` to the newest saved search state named `prefix*`; write it back (a
    temporary file and a rename locally, one PUT on object stores) when `edit` says so."""
    infos = [i for i in _listing(fs, run_path) if _SEARCH_STATE.match(i.base_name)]
    newest = max((i.base_name for i in infos), default=None)
    if newest is None or not newest.startswith(prefix):
        return False
    path = f"{run_path}/{newest}"
    with fs.open_input_stream(path) as handle:
        state = cloudpickle.loads(handle.read())
    if not isinstance(state, dict) or not edit(state):
        return False
    data = cloudpickle.dumps(state)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{run_path}/.{newest}.tmp"
        with fs.open_output_stream(tmp) as handle:
            handle.write(data)
        fs.move(tmp, path)
    else:
        with fs.open_output_stream(path) as handle:
            handle.write(data)
    return True


def _listing(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    try:
        return fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError:
        return []
