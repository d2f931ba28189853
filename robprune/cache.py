"""Content-addressed artifacts shared by concurrent trials: atomic writes under a file lock.

Several trials (Ray workers, or processes on a shared filesystem) may ask for the same dense
model at once. The first takes an exclusive `flock` and builds it; the others wait on the lock
and then find the finished artifact. Writes go to a temporary file and are renamed into place,
so a reader never sees half a file and a killed writer leaves no corrupt entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = ["content_key", "locked", "atomic_torch_save", "atomic_write_json", "read_json"]


def content_key(payload: Any) -> str:
    """Stable hash of a JSON-able payload (key order does not matter)."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: Path) -> Path:
    return _atomic(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_json(obj: Any, path: Path) -> Path:
    return _atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2, default=str)))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())
