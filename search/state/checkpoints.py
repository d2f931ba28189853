"""Whether a trial's checkpoint on storage is whole: a full disk or a kill can cut one short.

Tune copies a checkpoint directory file by file; a copy that stops midway leaves files cut
short or missing, and a trial restored from it fails to load it (`EOFError`), which would be
recorded as the trial's own failure. Every checkpoint the trainable writes carries a manifest
(`MANIFEST`: each file's size); a checkpoint whose files do not match it is cut short, and the
trial continues from the newest whole one instead (`search/run/resume_point.py`). A checkpoint
without a manifest (written by an older robprune) is judged by whether its state loads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from search.state import storage

__all__ = ["CHECKPOINT_DIR", "MANIFEST", "checkpoint_index", "write_manifest", "is_whole"]

MANIFEST = "robprune-manifest.json"
#: The name Tune gives a trial's checkpoint directory; group 1 is its index.
CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d+)$")


def checkpoint_index(name: str) -> int:
    """The index of a checkpoint directory's name; -1 for any other name."""
    match = CHECKPOINT_DIR.match(name)
    return int(match.group(1)) if match else -1


def write_manifest(directory: str | Path) -> None:
    """Record the size of every file under `directory` (call it last, before the upload)."""
    root = Path(directory)
    sizes = {
        str(p.relative_to(root)): p.stat().st_size
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    (root / MANIFEST).write_text(json.dumps(sizes, sort_keys=True) + "\n")


def is_whole(fs: Any, path: str) -> bool:
    """Whether the checkpoint at `path` holds every file of its manifest, at full size."""
    text = storage.read_text_or_none(fs, f"{path}/{MANIFEST}")
    if text is None:
        return storage.exists(fs, path)  # an older robprune's checkpoint: taken as whole
    try:
        expected = json.loads(text)
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except (ValueError, OSError):
        return False
    found = {i.path[len(path) + 1 :]: i.size for i in infos if i.type == pafs.FileType.File}
    return all(found.get(name) == size for name, size in expected.items())
