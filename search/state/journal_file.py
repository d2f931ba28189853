"""The Optuna journal as a file: a torn record (a full disk, a kill mid-write) set aside.

Optuna appends one JSON line per operation. A write cut short leaves a line without its end;
Optuna's reader tolerates it while it is the last line, but the next append goes after it and
every later read raises `JSONDecodeError`. Before the journal is opened, each line that is not
a whole JSON object is moved to `journal.log.torn` beside it (with the byte offset it had), and
a whole record glued behind a torn one is kept. The other records (Tune's trial directories,
their end markers and checkpoints) rebuild whatever the torn record held.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from robprune.io.atomic import atomic_write_text

__all__ = ["repair_journal", "TORN_SUFFIX"]

TORN_SUFFIX = ".torn"
_RECORD_START = '{"op_code"'


def _whole(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _salvage(line: str) -> tuple[str | None, str]:
    """(a whole record at the end of a bad line, or None; the torn part)."""
    at = line.rfind(_RECORD_START)
    if at > 0 and _whole(line[at:]):
        return line[at:], line[:at]
    return None, line


def _clean_tail(path: Path) -> bool:
    """Cheap check: the file ends with a newline and its last line is whole."""
    size = path.stat().st_size
    if size == 0:
        return True
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 65536))
        tail = handle.read()
    if not tail.endswith(b"\n"):
        return False
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    return _whole(last.decode("utf-8", "replace"))


def repair_journal(path: str | Path, *, full: bool = False) -> str | None:
    """Set torn records of the journal aside; returns a one-line note, or None if all whole.

    Reads the whole file only when its tail is torn or `full` (before a resume)."""
    path = Path(path)
    if not path.is_file() or (not full and _clean_tail(path)):
        return None
    text = path.read_bytes().decode("utf-8", "replace")
    kept, torn, offset = [], [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        if line.endswith("\n") and _whole(body):
            kept.append(line)
        elif body:
            record, bad = _salvage(body)
            torn.append(json.dumps({"offset": offset, "text": bad}) + "\n")
            if record is not None and line.endswith("\n"):
                kept.append(record + "\n")
        offset += len(line.encode())
    if not torn:
        return None
    with open(f"{path}{TORN_SUFFIX}", "a") as handle:
        handle.writelines(torn)
        handle.flush()
        os.fsync(handle.fileno())
    atomic_write_text("".join(kept), path)
    return (
        f"{path}: {len(torn)} torn record(s) (a write cut short) set aside in "
        f"{path.name}{TORN_SUFFIX}; the trials' own records rebuild what they held"
    )
