"""`robprune report` on results in object storage: s3://, gs:// (anything pyarrow opens).

A search on a cluster leaves its Parquet tables in the experiment's storage; the report is
built from local copies of the tables (and the Optuna journal beside them, when there is
one) and, when `-o` is a URI, uploaded there. Credentials come from the environment, as for
any pyarrow client (AWS_*, AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs as pafs

from robprune.errors import BadInput

__all__ = ["is_uri", "local_inputs", "local_output"]


def is_uri(value: str | Path) -> bool:
    text = str(value)
    return "://" in text and not text.startswith("file://")


def _open(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        return pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:
        raise BadInput(f"{uri}: {exc}") from None


def _files(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    return fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))


def _download(uri: str, dest: Path) -> Path:
    """The Parquet tables under `uri` (results dir, experiment dir or one .parquet file)."""
    fs, path = _open(uri)
    try:
        info = fs.get_file_info(path)
    except OSError as exc:
        raise BadInput(f"{uri}: {exc}") from None
    if info.type == pafs.FileType.File:
        pafs.copy_files(path, str(dest / info.base_name), source_filesystem=fs)
        return dest / info.base_name
    if info.type == pafs.FileType.NotFound:
        raise BadInput(f"{uri}: no such file or directory")
    names = {i.base_name for i in _files(fs, path)}
    results = path if "trials.parquet" in names else f"{path}/results"
    for item in _files(fs, results):
        if item.type == pafs.FileType.File and item.base_name.endswith(".parquet"):
            target = dest / "results" / item.base_name
            target.parent.mkdir(parents=True, exist_ok=True)
            pafs.copy_files(item.path, str(target), source_filesystem=fs)
    journal = f"{results.rsplit('/', 1)[0]}/optuna/journal.log"
    if fs.get_file_info(journal).type == pafs.FileType.File:
        (dest / "optuna").mkdir(exist_ok=True)
        pafs.copy_files(journal, str(dest / "optuna" / "journal.log"), source_filesystem=fs)
    if not (dest / "results" / "trials.parquet").exists():
        raise BadInput(f"{uri}: no trials.parquet there (or in results/)")
    return dest / "results"


@contextmanager
def local_inputs(results: list[str]) -> Iterator[list[str]]:
    """`results` with every URI replaced by a local copy (deleted afterwards)."""
    if not any(is_uri(r) for r in results):
        yield list(results)
        return
    with tempfile.TemporaryDirectory(prefix="robprune-report-in-") as tmp:
        local = []
        for i, item in enumerate(results):
            if is_uri(item):
                dest = Path(tmp) / str(i)
                dest.mkdir()
                local.append(str(_download(str(item), dest)))
            else:
                local.append(str(item))
        yield local


@contextmanager
def local_output(output: str) -> Iterator[str]:
    """A local directory for the report; uploaded to `output` afterwards when it is a URI."""
    if not is_uri(output):
        yield output
        return
    fs, path = _open(output)
    with tempfile.TemporaryDirectory(prefix="robprune-report-out-") as tmp:
        yield tmp
        fs.create_dir(path, recursive=True)
        pafs.copy_files(tmp, path, destination_filesystem=fs)
