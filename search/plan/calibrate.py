"""Seconds per image-pass on this machine: a few timed batches, cached by what they depend on.

For each distinct (architecture, input shape, classes, training method, attack steps, batch
size, threads, device) a few training steps of the real objective (`robprune.training.losses`)
are timed on random inputs, on the dense network and on one pruned to 75% of its parameters
(uniform, L1), so that a trial's pruned network is costed at its own sparsity (linear between
the two). One attack step (forward and backward with respect to the input, eval mode) is timed
the same way at the evaluation batch size. Results are JSON files under
`CACHE_DIR/calibration/`, named by a hash of their inputs: the second `robprune plan` reads them
and imports no torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from robprune.io.atomic import atomic_write_text
from search.plan.estimate import Rates
from search.plan.measured import CALIBRATION_VERSION, PRUNED_SPARSITY, Measured, StepKey
from search.plan.workload import data_shape

__all__ = [
    "CALIBRATION_VERSION",
    "PRUNED_SPARSITY",
    "StepKey",
    "Measured",
    "cached",
    "calibrate",
    "seconds_per_image",
    "step_key",
    "measured_rates",
    "default_threads",
]


def seconds_per_image(measured: Measured, key: StepKey, sparsity: float) -> float:
    return measured.at(sparsity) / key.batch


def _path(cache_dir: str | Path, key: StepKey) -> Path:
    return Path(cache_dir).expanduser() / "calibration" / f"{key.digest()}.json"


def cached(cache_dir: str | Path, key: StepKey) -> Measured | None:
    """A measurement made earlier on this machine, or None (no torch import)."""
    try:
        data = json.loads(_path(cache_dir, key).read_text())
        return Measured(**data["measured"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(cache_dir: str | Path, key: StepKey, measured: Measured) -> None:
    payload = {"key": asdict(key), "measured": asdict(measured)}
    path = _path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(payload, indent=1) + "\n", path)


def calibrate(
    cache_dir: str | Path, key: StepKey, log: Callable[[str], None] | None = None
) -> Measured:
    """The cached measurement of `key`, else measure it now (seconds to minutes) and cache."""
    found = cached(cache_dir, key)
    if found is not None:
        return found
    if log:
        log(f"calibrating {key.arch} {list(key.shape)} {key.method} (steps {key.steps}) ...")
    from search.plan.measure import measure  # torch: only when nothing is cached

    measured = measure(key)
    _store(cache_dir, key, measured)
    return measured


def default_threads(cpu: float) -> int:
    """Threads a trial's torch uses: the CPUs Ray gives it (search.trainable)."""
    return max(1, min(int(cpu), os.cpu_count() or 1))


def step_key(config: Any, *, method: str, batch: int, threads: int) -> StepKey:
    """The measurement a trial config's training (`method`) or attack steps ("attack") use."""
    sizes = data_shape(config)
    return StepKey(
        arch=config.model.arch,
        width=config.model.width,
        shape=sizes.shape,
        classes=sizes.classes,
        method=method,
        steps=config.threat.train_steps if method != "attack" else 1,
        batch=batch,
        norm=config.threat.norm,
        device=config.device,
        threads=threads,
    )


def measured_rates(
    cache_dir: str | Path,
    *,
    threads: int,
    measure: bool,
    log: Callable[[str], None] | None = None,
) -> Any:
    """`search.plan.estimate.Rates` read from the calibration cache, measuring what is missing
    when `measure` (else a missing entry raises `LookupError` naming it)."""
    seen: dict[StepKey, Measured] = {}
    devices: set[str] = set()

    def get(key: StepKey) -> Measured:
        if key not in seen:
            found = cached(cache_dir, key)
            if found is None:
                if not measure:
                    raise LookupError(f"{key.arch} {list(key.shape)} {key.method}")
                found = calibrate(cache_dir, key, log)
            seen[key] = found
            devices.add(found.device)
        return seen[key]

    def train(config: Any, method: str, sparsity: float, batch: int) -> float:
        key = step_key(config, method=method, batch=batch, threads=threads)
        return get(key).at(sparsity) / batch

    def attack(config: Any, sparsity: float) -> float:
        key = step_key(config, method="attack", batch=config.eval.batch_size, threads=threads)
        return get(key).at(sparsity) / key.batch

    def prune(config: Any) -> float:
        key = step_key(config, method="attack", batch=config.eval.batch_size, threads=threads)
        return get(key).prune_s

    return Rates(train=train, attack=attack, prune=prune, source="calibrated", devices=devices)
