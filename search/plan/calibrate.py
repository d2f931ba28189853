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

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from robprune.io.atomic import atomic_write_text
from search.plan.estimate import Rates
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

#: Bump when what is measured changes: older cache entries are then ignored.
CALIBRATION_VERSION = 2
#: The pruned point of the two measured (sparsity 0 and this).
PRUNED_SPARSITY = 0.75
#: Timed batches: at least this many, and more while under MIN_SECONDS (after one warm-up).
MIN_BATCHES, MAX_BATCHES, MIN_SECONDS = 2, 8, 0.5


@dataclass(frozen=True, kw_only=True)
class StepKey:
    """What one measurement depends on. `method` "attack" times one attack step instead of a
    training step (then `steps` is 1 and `batch` is the evaluation batch size)."""

    arch: str
    width: float | None
    shape: tuple[int, int, int]
    classes: int
    method: str
    steps: int
    batch: int
    norm: str
    device: str
    threads: int

    def digest(self) -> str:
        host = platform.node() or "host"
        text = json.dumps({"v": CALIBRATION_VERSION, "host": host, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True, kw_only=True)
class Measured:
    """Seconds per batch step at sparsity 0 and at PRUNED_SPARSITY, and where measured."""

    dense_s: float
    pruned_s: float
    device: str
    batches: int
    prune_s: float = 0.0
    """Seconds of one structured pruning of the network (Torch-Pruning's dependency graph and
    the pruning itself): each trial prunes once, and `prune_damage` once per group."""

    def at(self, sparsity: float) -> float:
        """Seconds per step at `sparsity`, linear between the measured points (never below
        a tenth of the dense time)."""
        slope = (self.pruned_s - self.dense_s) / PRUNED_SPARSITY
        return max(self.dense_s + slope * sparsity, 0.1 * self.dense_s)


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
    measured = _measure(key)
    _store(cache_dir, key, measured)
    return measured


def _timed(step: Callable[[], Any], sync: Callable[[], None]) -> tuple[float, int]:
    step()  # warm-up: allocations, kernels chosen
    sync()
    start, done = time.perf_counter(), 0
    while done < MIN_BATCHES or (done < MAX_BATCHES and time.perf_counter() - start < MIN_SECONDS):
        step()
        done += 1
    sync()
    return (time.perf_counter() - start) / done, done


def _cpu_model() -> str:
    """The CPU's model name (Linux), else the platform's word for it, else nothing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.partition(":")[2].split())
    except OSError:
        pass
    return platform.processor()


def _measure(key: StepKey) -> Measured:
    import torch

    from robprune.runtime import Runtime, resolve_device

    device = resolve_device(key.device)
    runtime = Runtime.default(device)
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, key.threads))
    try:
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        results, batches, prune_s = [], 0, 0.0
        for sparsity in (0.0, PRUNED_SPARSITY):
            start = time.perf_counter()
            model = _model(key, sparsity, device)
            prune_s = time.perf_counter() - start if sparsity else prune_s
            seconds, n = _timed(_step(key, model, runtime, device), sync)
            results.append(seconds)
            batches += n
    finally:
        torch.set_num_threads(previous)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model()
    return Measured(
        dense_s=results[0],
        pruned_s=results[1],
        device=f"{device.type} ({name}, {key.threads} threads)" if name else device.type,
        batches=batches,
        prune_s=prune_s,
    )


def _model(key: StepKey, sparsity: float, device: Any) -> Any:
    import torch

    from robprune.models import create_model

    c = key.shape[0]
    model = create_model(
        key.arch,
        num_classes=key.classes,
        input_shape=key.shape,
        mean=[0.5] * c,
        std=[0.25] * c,
        width=key.width,
    )
    if sparsity > 0:
        from robprune.pruning import prune_model

        prune_model(
            model,
            example=torch.rand(1, *key.shape),
            criterion="l1",
            sparsity=sparsity,
            rule="uniform",
            max_ratio=0.9,
            layer_mrs=None,
            calib=None,
            seed=0,
        )
    return model.to(device)


def _step(key: StepKey, model: Any, runtime: Any, device: Any) -> Callable[[], None]:
    """One training step of the objective, or one attack step (gradient w.r.t. the input)."""
    import torch
    import torch.nn.functional as F

    from robprune.training.losses import AdversarialSetting, objective

    model = runtime.prepare(model)
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(0)
    x = runtime.format(torch.rand(key.batch, *key.shape, device=device))
    y = torch.randint(0, key.classes, (key.batch,), device=device)
    if key.method == "attack":
        model.eval()

        def attack_step() -> None:
            xa = x.clone().requires_grad_(True)
            with runtime.autocast():
                loss = F.cross_entropy(model(xa), y)
            torch.autograd.grad(loss, xa)

        return attack_step
    adv = AdversarialSetting(epsilon=0.03, step_size=0.01, steps=key.steps, norm=key.norm)
    loss_fn = objective(key.method)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()

    def train_step() -> None:
        with runtime.autocast():
            loss = loss_fn(model, x, y, adv, gen).float()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return train_step


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
