"""Timing a few training (or attack) steps of the real objective on random inputs, for
`search.plan.calibrate`: imports torch, which the calibration imports only when nothing is
cached."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from robprune.models import create_model
from robprune.pruning import prune_model
from robprune.runtime import Runtime, resolve_device
from robprune.training.losses import AdversarialSetting, objective
from search.plan.measured import PRUNED_SPARSITY, Measured, StepKey

__all__ = ["measure"]

#: Timed batches: at least this many, and more while under MIN_SECONDS (after one warm-up).
MIN_BATCHES, MAX_BATCHES, MIN_SECONDS = 2, 8, 0.5


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


def measure(key: StepKey) -> Measured:
    """Time the dense and the pruned network's step on random inputs (seconds to minutes)."""
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
