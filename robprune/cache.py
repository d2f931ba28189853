"""Content-addressed artifacts shared by concurrent trials: atomic writes under a file lock.

Several trials (Ray workers, or processes on a shared filesystem) may ask for the same dense
model at once. The first takes an exclusive `flock` and builds it; the others wait on the lock
and then find the finished artifact. The torch-free parts live in `robprune.atomic_io`; this
module adds the one writer that needs torch and re-exports the rest under their old names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robprune.atomic_io import atomic_write, atomic_write_json, content_key, read_json
from robprune.atomic_io import file_lock as locked

__all__ = ["content_key", "locked", "atomic_torch_save", "atomic_write_json", "read_json"]


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """`torch.save` to a unique temporary beside `path`, then rename (see `atomic_io`)."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
