"""Where the dense-model cache keeps an entry: `CACHE_DIR/dense/KEY/{model.pt, meta.json}`.

One place for the layout, torch-free, so the trial that writes an entry
(`robprune.trial.dense`) and the search that looks for finished entries in an experiment's
storage (local or remote) agree. `meta.json` is written last: its presence marks an entry
complete. KEY is `robprune.trial.dense.dense_key`, a content key of what changes the weights.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "DENSE_FORMAT",
    "DENSE_IGNORED",
    "DENSE_INPUTS",
    "DENSE_PREFIXES",
    "META_FILE",
    "WEIGHTS_FILE",
    "dense_directory",
    "dense_meta_path",
    "dense_lock_path",
]

#: Format tag of a dense entry's key payload and its `meta.json`.
DENSE_FORMAT = "robprune.dense/1"
#: What the dense weights depend on, besides the seed: whole config sections (None) or the
#: listed fields of one. `dense_key` hashes exactly these; a search may vary them only over
#: finitely many values, since every dense model is trained before the trials.
DENSE_INPUTS: dict[str, tuple[str, ...] | None] = {
    "data": None,
    "model": None,
    "dense": None,
    "threat": ("norm", "epsilon", "step_size", "train_steps"),
}
#: Fields inside those sections that say where the files are, not what they hold.
DENSE_IGNORED = ("data.download", "data.data_dir")
#: The same as key-path prefixes (`data.`, ..., `threat.norm`, ...), for the search's space.
DENSE_PREFIXES: tuple[str, ...] = tuple(
    prefix
    for section, fields in DENSE_INPUTS.items()
    for prefix in ((f"{section}.",) if fields is None else (f"{section}.{f}" for f in fields))
)
#: The entry's record: recipe, history, cached accuracies; written last.
META_FILE = "meta.json"
#: The entry's weights: a plain state_dict (loadable with `weights_only=True`).
WEIGHTS_FILE = "model.pt"


def dense_directory(cache_dir: str | os.PathLike, key: str) -> Path:
    """The local directory of dense model `key` under a trial's `cache_dir` (`~` expanded)."""
    return Path(cache_dir).expanduser() / "dense" / key


def dense_meta_path(cache_dir: str, key: str) -> str:
    """`meta.json` of dense model `key` under `cache_dir`, as a '/'-joined path (a local path
    or a pyarrow filesystem path alike): it exists once the entry is complete."""
    return f"{str(cache_dir).rstrip('/')}/dense/{key}/{META_FILE}"


def dense_lock_path(cache_dir: str | os.PathLike, key: str) -> Path:
    """The lock file the first builder of entry `key` holds while the others wait."""
    return Path(cache_dir).expanduser() / "dense" / f".{key}.lock"
