"""The dense stage: every dense model a search can use is trained once, before any trial.

Trials then find them in the shared cache (EXPERIMENT/dense, or a local working copy of it on
remote storage) and never retrain.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from robprune.config import parse_trial_config
from robprune.io.dense_cache import dense_key, dense_meta_path
from search.run.tasks import failure_line, use_assigned_cpus
from search.spec.grid import dense_configs
from search.spec.model import Spec
from search.state import storage
from search.state.experiment import Experiment

__all__ = ["run_dense_stage", "cache_dir"]


def cache_dir(spec: Spec, exp: Experiment) -> Path | str:
    """The trials' `cache_dir`: the spec's own, else the experiment's dense directory."""
    if "cache_dir" in spec.template:
        return spec.template["cache_dir"]
    if exp.remote:
        return str(exp.dense_dir).replace(str(Path.home()), "~", 1)
    return exp.dense_dir


def _dense_task(config: dict[str, Any], upload_to: str | None) -> str:
    """Train (or find) one dense model exactly as `run_trial` would, in a Ray task."""
    from robprune.trial.dense import ensure_dense_for

    use_assigned_cpus()
    dense = ensure_dense_for(parse_trial_config(config), log=lambda m: print(m))
    if upload_to:  # EXPERIMENT/dense is the trials' cache_dir: the same layout there
        key = str(dense.meta["key"])
        fs, root = storage.filesystem(upload_to)
        target = dense_meta_path(root, key).rpartition("/")[0]
        storage.copy_tree(str(dense.directory), target, destination_fs=fs)
    return str(dense.meta["key"])


def _stored_keys(exp: Experiment, configs: list[dict[str, Any]]) -> list[str] | None:
    """The keys of the dense models if they are all trained already: in the experiment's
    storage (remote), or in the trials' cache directory (local)."""
    parsed = [parse_trial_config(c) for c in configs]
    keys = [dense_key(p) for p in parsed]
    for key, config in zip(keys, parsed, strict=True):
        if exp.remote:  # EXPERIMENT/dense, the trials' cache_dir there
            fs, meta = exp.fs, dense_meta_path(f"{exp.fs_path}/dense", key)
        else:
            fs, meta = (
                storage.LOCAL,
                dense_meta_path(str(Path(config.cache_dir).expanduser()), key),
            )
        if not storage.is_file(fs, meta):
            return None
    return keys


def run_dense_stage(spec: Spec, exp: Experiment, stream: Any = None) -> list[str]:
    """Train every dense model the search can use, once, before any trial starts.

    A dense model that fails to train is reported; the trials that need it fail with the
    reason. When they are all trained already (a resume) nothing runs here; on remote storage
    nothing is downloaded either: each node's trials fetch them from storage.
    Returns the keys of the dense models that are ready.
    """
    import ray

    stream = stream or sys.stdout
    configs = dense_configs(spec, str(cache_dir(spec, exp)))
    stored = _stored_keys(exp, configs)
    where = storage.join(exp.location, "dense")
    if stored is not None:
        print(
            f"dense stage: {len(stored)} dense model(s) already trained in {where}",
            file=stream,
            flush=True,
        )
        return stored
    upload = where if exp.remote else None
    task = ray.remote(_dense_task).options(num_cpus=spec.cpu, num_gpus=spec.gpu, max_retries=0)
    print(
        f"dense stage: {len(configs)} dense model(s) under {where}",
        file=stream,
        flush=True,
    )
    start = time.perf_counter()
    refs = [task.remote(cfg, upload) for cfg in configs]
    keys = []
    for ref, cfg in zip(refs, configs, strict=True):
        try:
            keys.append(ray.get(ref))
        except Exception as exc:  # noqa: BLE001 - reported; the trials fail with the reason
            arch = cfg.get("model", {}).get("arch", "?")
            print(f"dense stage: {arch} failed: {failure_line(exc)}", file=stream, flush=True)
    print(
        f"dense stage: {len(keys)} of {len(configs)} ready after "
        f"{time.perf_counter() - start:.0f} s",
        file=stream,
        flush=True,
    )
    return keys
