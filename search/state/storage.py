"""Reading and writing experiment files, on a local path or any URI pyarrow understands.

The one place that knows how: locations (a path or s3://, gs://, with a query such as
`?endpoint_override=` kept), pyarrow filesystems, small text and JSON-lines files, atomic local
writes (temporary file, rename) and single PUTs on object stores, listings and tree copies; and
for an experiment (anything with the attributes of `Located`, such as
`search.state.experiment.Experiment`): its files, Tune's storage, the local working copy of a
remote experiment and the published results/. The experiment, the export, the reconciliation
before a resume and the trainable all read through it, so a file that is missing, cut short or
unreadable is treated the same everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

import pyarrow.fs as pafs

from robprune.errors import BadInput
from robprune.io.atomic import atomic_write_text

__all__ = [
    "is_remote",
    "resolve_location",
    "join",
    "parent",
    "filesystem",
    "is_file",
    "exists",
    "read_text",
    "read_text_or_none",
    "read_json_lines",
    "write_text",
    "listing",
    "copy_tree",
    "LOCAL",
    "Located",
    "read_file",
    "write_file",
    "tune_storage",
    "pull",
    "push",
    "replace_dir",
    "switch_version",
]

#: The local filesystem (paths on this machine).
LOCAL = pafs.LocalFileSystem()


def is_remote(location: str) -> bool:
    """A URI with a scheme other than file:// is remote."""
    return "://" in location and not location.startswith("file://")


def resolve_location(location: str) -> str:
    """Local paths become absolute; URIs are kept as given (without a trailing slash)."""
    if location.startswith("file://"):
        return str(Path(location[len("file://") :]).expanduser().resolve())
    if is_remote(location):
        base, sep, query = location.partition("?")
        return base.rstrip("/") + sep + query
    return str(Path(location).expanduser().resolve())


def join(location: str, *parts: str) -> str:
    """Path join that keeps a URI's query (s3://b/p?endpoint_override=... stays valid)."""
    if not is_remote(location):
        return str(Path(location, *parts))
    base, sep, query = location.partition("?")
    return "/".join([base.rstrip("/"), *parts]) + sep + query


def parent(location: str) -> str:
    if not is_remote(location):
        return str(Path(location).parent)
    base, sep, query = location.partition("?")
    return base.rstrip("/").rsplit("/", 1)[0] + sep + query


def filesystem(location: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) of a resolved location; a bad URI is bad input."""
    if is_remote(location):
        try:
            return pafs.FileSystem.from_uri(location)
        except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise BadInput(f"storage {location!r}: {exc}") from None
    return LOCAL, location


def is_file(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.File


def exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def read_text(fs: pafs.FileSystem, path: str) -> str:
    """The file's text; FileNotFoundError when there is no such file."""
    if not is_file(fs, path):
        raise FileNotFoundError(path)
    with fs.open_input_stream(path) as handle:
        return handle.read().decode()


def read_text_or_none(fs: pafs.FileSystem, path: str) -> str | None:
    """The file's text, or None when it is missing or cannot be read (storage, encoding)."""
    try:
        return read_text(fs, path)
    except (OSError, UnicodeDecodeError):
        return None


def read_json_lines(fs: pafs.FileSystem, path: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (Tune's result.json); a line that a kill cut
    short, and a missing file, give nothing."""
    rows = []
    for line in (read_text_or_none(fs, path) or "").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def write_text(fs: pafs.FileSystem, path: str, text: str) -> None:
    """Atomic on a local disk (temporary file, rename); one PUT on object stores."""
    if isinstance(fs, pafs.LocalFileSystem):
        atomic_write_text(text, path)
        return
    with fs.open_output_stream(path) as handle:
        handle.write(text.encode())


def listing(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    """The entries directly under `path` (none when it is missing or unreadable)."""
    try:
        return fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError:
        return []


def copy_tree(
    source: str,
    destination: str,
    *,
    source_fs: pafs.FileSystem = LOCAL,
    destination_fs: pafs.FileSystem = LOCAL,
) -> None:
    """Copy a directory tree between filesystems (a working copy up or down)."""
    pafs.copy_files(
        source, destination, source_filesystem=source_fs, destination_filesystem=destination_fs
    )


# ------------------------------------------------------------------------------ an experiment's


class Located(Protocol):
    """What storage needs to know of an experiment (its location and local working copy)."""

    location: str
    fs: pafs.FileSystem
    fs_path: str
    remote: bool
    work_dir: Path


def read_file(exp: Located, rel: str) -> str:
    """EXPERIMENT/rel; FileNotFoundError when it is not there."""
    return read_text(exp.fs, f"{exp.fs_path}/{rel}")


def write_file(exp: Located, rel: str, text: str) -> None:
    """EXPERIMENT/rel, atomically on a local disk; one PUT on object stores."""
    write_text(exp.fs, f"{exp.fs_path}/{rel}", text)


def tune_storage(exp: Located, run: str | None = None) -> tuple[str, pafs.FileSystem | None]:
    """(path, filesystem) of EXPERIMENT/tune[/run] for Tune: remote runs get pyarrow's
    filesystem object, which keeps options such as an S3 endpoint that a path would lose."""
    if not exp.remote:
        return join(exp.location, "tune", *([run] if run else [])), None
    return f"{exp.fs_path}/tune" + (f"/{run}" if run else ""), exp.fs


def pull(exp: Located, sub: str) -> None:
    """Remote experiments: copy EXPERIMENT/sub into the local working copy."""
    if not exp.remote or not exists(exp.fs, f"{exp.fs_path}/{sub}"):
        return
    local = exp.work_dir / sub
    local.mkdir(parents=True, exist_ok=True)
    copy_tree(f"{exp.fs_path}/{sub}", str(local), source_fs=exp.fs)


def push(exp: Located, sub: str) -> None:
    """Remote experiments: upload the local working copy of EXPERIMENT/sub."""
    local = exp.work_dir / sub
    if not exp.remote or not local.exists():
        return
    copy_tree(str(local), f"{exp.fs_path}/{sub}", destination_fs=exp.fs)


def switch_version(final: Path, new: Path) -> None:
    """Make the folder `final` show `new`'s files, atomically for readers.

    `final` is a symbolic link to a version folder beside it (`.NAME-vID`); the new version is
    switched in by one rename of a new link over it, so a reader sees the previous complete
    set or the new one, never a mix. The previous version is kept (a reader may be inside
    it); older ones are removed. A real folder (an older layout) is moved aside first."""
    version = final.parent / f".{final.name}-v{time.time_ns():x}"
    os.replace(new, version)
    link = final.parent / f".{final.name}-link-{uuid.uuid4().hex[:8]}"
    os.symlink(version.name, link)
    previous = os.readlink(final) if final.is_symlink() else None
    if final.is_dir() and not final.is_symlink():
        previous = f".{final.name}-v0-{uuid.uuid4().hex[:8]}"
        os.replace(final, final.parent / previous)
    os.replace(link, final)
    for old in final.parent.glob(f".{final.name}-v*"):
        if old.name not in (version.name, previous):
            shutil.rmtree(old, ignore_errors=True)


def replace_dir(exp: Located, sub: str, local_dir: Path) -> str:
    """Publish a freshly written EXPERIMENT/sub (local: a new version switched in by one
    rename, `switch_version`; remote: upload, its tensorboard/ replaced whole, which a reader
    can see half done). Returns where it is."""
    target = join(exp.location, sub)
    if not exp.remote:
        switch_version(Path(target), local_dir)
        return target
    remote = f"{exp.fs_path}/{sub}"
    if exists(exp.fs, f"{remote}/tensorboard"):
        exp.fs.delete_dir(f"{remote}/tensorboard")
    copy_tree(str(local_dir), remote, destination_fs=exp.fs)
    return target
