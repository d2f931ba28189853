"""Learning-rate schedules, stepped once per iteration so short runs still anneal smoothly."""

from __future__ import annotations

import math

import torch

__all__ = ["build_scheduler", "lr_factor"]


def lr_factor(schedule: str, *, step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the peak learning rate after `step` optimizer steps.

    `step` schedules drop x0.1 at 50% and 75% of training (the CIFAR AT convention);
    `onecycle` is a triangular rise to the peak and a linear fall to 0 (fast AT).
    Warm-up is linear from 0 and precedes every schedule; for onecycle the warm-up is its
    rising half, so `warmup_steps` places the peak (default: at 30% of training).
    """
    total_steps = max(total_steps, 1)
    if schedule == "onecycle":
        rise = warmup_steps if warmup_steps > 0 else int(0.3 * total_steps)
        peak = min(max(rise, 1), total_steps)
        if step < peak:
            return step / peak
        return max(0.0, (total_steps - step) / max(total_steps - peak, 1))
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    schedule: str,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: int = 0,
) -> torch.optim.lr_scheduler.LambdaLR:
    total = epochs * steps_per_epoch
    warmup = warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        return lr_factor(schedule, step=step, total_steps=total, warmup_steps=warmup)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
