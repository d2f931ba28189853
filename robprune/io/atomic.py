"""Torch-free file I/O shared by every package: atomic writes, a file lock, content keys.

Why one module: trials, the search export and the report writer all publish files that other
processes read while they are being written, and several processes may build the same cached
artifact at once. A write goes to a temporary file with a unique name in the target's own
directory (so the rename never crosses a filesystem and two writers never share a temporary),
is flushed to disk, then renamed over the target with `os.replace`: a reader sees the old file or
the new one, never half of one, and a killed writer leaves no corrupt target behind.

Argument order follows `json.dump` / `torch.save`: what to write first, then where.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_torch_save",
    "read_json",
    "file_lock",
    "canonical_json",
    "content_key",
]


def _temp_path(path: Path) -> Path:
    """A fresh name beside `path`, created empty with O_EXCL so no two writers can share it."""
    while True:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            # 0o666 lets the umask decide, as a plain open() would (mkstemp would force 0600).
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp_path)` to produce the content, then rename it onto `path`.

    For writers that want a path (`torch.save`, `pyarrow.parquet.write_table`, `np.savez`). The
    parent directory is created. On any failure the temporary is removed and the error raised;
    the previous content of `path`, if any, is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Atomically replace `path` with `data`."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(text: str, path: str | os.PathLike, *, encoding: str = "utf-8") -> Path:
    """Atomically replace `path` with `text`."""
    return atomic_write_bytes(text.encode(encoding), path)


def atomic_write_json(
    obj: Any, path: str | os.PathLike, *, indent: int | None = 2, sort_keys: bool = False
) -> Path:
    """Atomically write `obj` as JSON (values JSON cannot hold are written with `str`)."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str)
    return atomic_write_text(text + ("\n" if indent is not None else ""), path)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """`torch.save` through `atomic_write` (torch imported here: the module stays torch-free)."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive `flock` on `path` (created if absent) for the body of the `with`.

    Advisory, per open file: it serialises cooperating processes on one host (and on
    filesystems whose flock is cluster-wide). The lock file is left in place on purpose:
    deleting it would let a third process lock a new inode while the second holds the old one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def canonical_json(payload: Any) -> str:
    """One spelling per value: sorted keys, no whitespace, non-JSON values via `str`."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)


def content_key(payload: Any, *, length: int = 20) -> str:
    """Stable hex key of a JSON-able payload (sha256 of its canonical JSON; key order ignored)."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:length]
