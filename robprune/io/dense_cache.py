"""Where the dense-model cache keeps an entry: `CACHE_DIR/dense/KEY/{model.pt, meta.json}`.

One place for the layout, torch-free, so the trial that writes an entry
(`robprune.trial.dense`) and the search that looks for finished entries in an experiment's
storage (local or remote) agree. `meta.json` is written last: its presence marks an entry
complete. KEY is `dense_key`, a content key of what changes the weights (torch-free, so
`robprune plan` counts dense models without importing torch).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from robprune.config import TrialConfig
from robprune.errors import ConfigError
from robprune.io.atomic import content_key

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
    "dense_key",
    "checkpoint_sha256",
    "file_sha256",
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


def dense_key(config: TrialConfig) -> str:
    """Everything that changes the dense weights (`DENSE_INPUTS`, the seed), nothing else."""
    tree = config.to_dict()
    for path in DENSE_IGNORED:
        section, name = path.split(".")
        tree[section].pop(name, None)
    if config.dense.checkpoint is not None:  # brought: its bytes, not its path or a recipe
        return content_key(
            {
                "format": DENSE_FORMAT,
                "data": tree["data"],
                "model": tree["model"],
                "checkpoint_sha256": checkpoint_sha256(config.dense.checkpoint),
                "normalize": config.dense.normalize,
            }
        )
    resolved = asdict(config.resolved_threat)  # the data set's defaults filled in
    payload: dict[str, Any] = {"format": DENSE_FORMAT, "seed": config.seed}
    for section, fields in DENSE_INPUTS.items():
        whole = tree[section]
        payload[section] = (
            whole if fields is None else {f: resolved.get(f, whole[f]) for f in fields}
        )
    return content_key(payload)


def checkpoint_sha256(path: str) -> str:
    """SHA-256 of a brought checkpoint file; a missing file is bad input (dense.checkpoint)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError("dense.checkpoint", f"no such file: {file}")
    return file_sha256(file)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
