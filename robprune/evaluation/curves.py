"""Security curves: robust accuracy against the attack budget, as the Adversarial Pruning
Benchmark shows them (0, eps/4, eps/2, eps, 2 eps, 4 eps), then an unbounded budget.

The same sweep serves two purposes: the finalists' gradient-masking check (accuracy must fall
as the budget grows and reach zero when any image is reachable, `masking.sweep_flags`) and the
report's curves, one per finalist and one per dense model they were pruned from.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from robprune.attacks import build_attack, robust_accuracy
from robprune.data import TensorSplit
from robprune.evaluation.accuracy import accuracy_under

__all__ = ["CURVE_FACTORS", "security_curve", "unbounded_budget"]

#: Multiples of the threat's epsilon on the curve (0 is clean accuracy).
CURVE_FACTORS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)


def unbounded_budget(norm: str, shape: tuple[int, ...]) -> float:
    """A budget that reaches every image in [0, 1]^d from any other."""
    return 1.0 if norm == "linf" else math.sqrt(math.prod(shape))


def security_curve(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epsilon: float,
    norm: str,
    steps: int,
    batch_size: int,
    device: torch.device,
    seed: int,
) -> list[dict[str, Any]]:
    """Rows {factor, epsilon, accuracy[, unbounded]}: PGD-`steps` at each CURVE_FACTORS
    multiple of `epsilon` on the examples (x, y), then at an unbounded budget."""
    pgd_name = f"pgd{steps}"

    def acc(eps: float) -> float:
        if eps == 0:
            split = TensorSplit(x=x, y=y)
            return accuracy_under(
                model, split, None, batch_size=batch_size, device=device
            ).accuracy
        attack = build_attack(pgd_name, epsilon=eps, norm=norm)
        gen = torch.Generator().manual_seed(seed)
        return robust_accuracy(
            model, x, y, attack, batch_size=batch_size, device=device, generator=gen
        )

    rows: list[dict[str, Any]] = [
        {"factor": f, "epsilon": epsilon * f, "accuracy": acc(epsilon * f)} for f in CURVE_FACTORS
    ]
    top = unbounded_budget(norm, tuple(x.shape[1:]))
    rows.append({"factor": None, "epsilon": top, "accuracy": acc(top), "unbounded": True})
    return rows
