"""Bad storage is bad input: found before a command writes anything.

An experiment directory that is read-only, full, half-deleted (its `tune/` runs or `optuna/`
journal gone) or written by a newer robprune gives one line naming the path and what is wrong
(exit 2), and nothing in it is changed: every check only reads, except a probe file that is
created and removed again to find a read-only or full disk. `search` and `submit` check the
new experiment's storage (`check_new_location`: writable, and room for the plan's estimate of
what the search writes), `export` the experiment (`check_exportable`). One rule decides what
is read-only for every command (`refuse_read_only`): a folder whose write bits are cleared is
read-only even for root, who could write anyway.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

from robprune.errors import BadInput
from search.state import storage
from search.state.experiment import SPEC_FILE, STATE_FILE, Experiment

__all__ = ["check_resumable", "check_new_location", "check_exportable", "refuse_read_only"]

_PROBE_BYTES = 1 << 20  # a full disk refuses this much; a nearly full one has no room to work


def _missing(exp: Experiment, rel: str) -> bool:
    try:
        return not storage.exists(exp.fs, f"{exp.fs_path}/{rel}")
    except OSError:
        return True


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "read-only (robprune needs to write there to resume)"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    return exc.strerror or str(exc)


def refuse_read_only(target: Path, why: str) -> None:
    """The one write-permission rule of every command: BadInput if `target` is read-only."""
    # write bits cleared count as read-only even for root, who could write anyway
    if target.exists() and (not os.access(target, os.W_OK) or not target.stat().st_mode & 0o222):
        raise BadInput(f"{target}: read-only (robprune needs to write there {why})")


def _check_writable(exp: Experiment, why: str = "to resume") -> None:
    """Write and remove a probe file (1 MiB) in the experiment, and check the files we touch."""
    if not exp.remote:
        root = Path(exp.location)
        for rel in (".", STATE_FILE, "tune", "optuna", "results", "dense"):
            refuse_read_only(root / rel, why)
    probe = f"{exp.fs_path}/.robprune-probe-{uuid.uuid4().hex[:8]}"
    try:
        with exp.fs.open_output_stream(probe) as handle:
            handle.write(b"\0" * _PROBE_BYTES)
    except OSError as exc:
        raise BadInput(f"{exp.location}: {_why(exc)}") from None
    finally:
        try:
            exp.fs.delete_file(probe)
        except OSError:
            pass


def check_resumable(exp: Experiment) -> None:
    """Raise BadInput (one line, naming the path) if `exp` cannot be resumed as it is."""
    if _missing(exp, SPEC_FILE):
        where = storage.join(exp.location, SPEC_FILE)
        raise BadInput(f"{where}: missing (the experiment's spec); cannot resume")
    started = [s for s in exp.segments if s.tune_started]
    for segment in started:
        if _missing(exp, f"tune/{segment.name}"):
            tune = storage.join(exp.location, "tune")
            where = tune if _missing(exp, "tune") else storage.join(tune, segment.name)
            raise BadInput(
                f"{where}: missing (Ray Tune's record of run {segment.name}); the experiment "
                "is incomplete and cannot be resumed"
            )
    if exp.mode != "grid" and started and _missing(exp, "optuna/journal.log"):
        optuna = storage.join(exp.location, "optuna")
        where = optuna if _missing(exp, "optuna") else storage.join(optuna, "journal.log")
        raise BadInput(
            f"{where}: missing (the Optuna study of this {exp.mode} search); the experiment "
            "is incomplete and cannot be resumed"
        )
    _check_writable(exp)


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"


def check_new_location(location: str, need: int) -> None:
    """Before a new experiment is created at `location`: its storage is writable and has
    `need` bytes free (local), or takes a probe object (object storage). Creates nothing."""
    if storage.is_remote(location):
        fs, path = storage.filesystem(location)
        probe = f"{path.rstrip('/')}-robprune-probe-{uuid.uuid4().hex[:8]}"
        try:
            with fs.open_output_stream(probe) as handle:
                handle.write(b"\0")
            fs.delete_file(probe)
        except OSError as exc:
            raise BadInput(f"{location}: cannot write there ({_why(exc)})") from None
        return
    where = _existing_ancestor(Path(location))
    refuse_read_only(where, f"to create {location}")
    free = shutil.disk_usage(where).free
    if free < need:
        raise BadInput(
            f"{where}: not enough room ({_size(free)} free; the search writes up to about "
            f"{_size(need)}, the plan's estimate with a margin)"
        )


def check_exportable(exp: Experiment) -> None:
    """Before `export` rewrites EXPERIMENT/results: writable, with room for the tables."""
    _check_writable(exp, "to export")
