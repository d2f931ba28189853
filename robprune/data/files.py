"""Where on-disk data sets live, and one-line error text for when they are not there."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from robprune.errors import DataError

__all__ = [
    "DATA_DIR_ENV",
    "default_data_dir",
    "find_root",
    "one_line",
    "reading",
    "resolve_data_dir",
]

DATA_DIR_ENV = "ROBPRUNE_DATA_DIR"


def default_data_dir() -> Path:
    """`$ROBPRUNE_DATA_DIR`, else ./data: where files are looked for when data_dir is null."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """An absolute path (so error messages say exactly where files were expected)."""
    base = default_data_dir() if data_dir in (None, "") else Path(os.fspath(data_dir))
    return Path(os.path.abspath(os.path.expandvars(base.expanduser())))


def find_root(base: Path, subdirs: Sequence[str], marker: str) -> Path | None:
    """The folder holding `marker`: `base/<subdir>` for a standard subfolder, or `base` itself.

    Lets data_dir name either the folder that contains the standard subfolder or the subfolder.
    """
    for candidate in [*(base / s for s in subdirs), base]:
        if (candidate / marker).exists():
            return candidate
    return None


def one_line(exc: BaseException) -> str:
    """An exception as a single line: its type, and its message with whitespace collapsed."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def reading(dataset: str, path: Path) -> Iterator[None]:
    """Any failure to read `path` inside becomes one `DataError` line naming the data set and
    the file: missing, unreadable (permissions, I/O), or corrupt (anything else)."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{dataset}: missing file {path}") from None
    except OSError as exc:  # permissions, I/O errors
        raise DataError(f"{dataset}: cannot read {path} ({one_line(exc)})") from None
    except Exception as exc:  # truncated or garbage bytes, wrong keys, wrong shapes
        raise DataError(f"{dataset}: corrupt file {path} ({one_line(exc)})") from None
