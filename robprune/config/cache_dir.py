"""Where robprune caches dense models, MRS scores and plan calibrations by default.

One place, never the current folder: `$ROBPRUNE_CACHE_DIR` when set, else the platform's user
cache directory (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS,
`%LOCALAPPDATA%` on Windows) with `robprune` under it. A spec's `cache_dir` still wins, and a
search keeps its dense models inside the experiment (`EXPERIMENT/dense`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CACHE_ENV", "default_cache_dir"]

CACHE_ENV = "ROBPRUNE_CACHE_DIR"


def default_cache_dir() -> str:
    """The cache directory when neither the spec nor the search names one."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return str(Path(given).expanduser())
    if sys.platform == "darwin":
        root = Path("~/Library/Caches").expanduser()
    elif sys.platform == "win32":
        root = Path(os.environ.get("LOCALAPPDATA") or Path("~/AppData/Local").expanduser())
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path("~/.cache").expanduser())
    return str(root / "robprune")
