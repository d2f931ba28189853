"""Module Robust Sensitivity: how much each layer's worst weight perturbation raises the
adversarial loss (docs/architecture.md; this project's reading of arXiv 2410.15176 after RiFT).

MRS_l = max_{||d|| <= eps ||theta_l||} L_adv(theta_l + d) - L_adv(theta_l), on a fixed set of PGD
examples from the training split. Estimators, keyed by name so another is one entry:
`first_order` (eps ||theta_l|| ||grad_l||, one backward pass), `ascent` (K steps of
normalised gradient ascent projected onto the ball) and `prune_damage` (not a weight ball: the
loss rise when the group alone is pruned at the target ratio, `robprune.pruning.damage`). The
model stays in eval mode throughout. Formulas and reasons: docs/mrs.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import Tensor, nn

from robprune.attacks import eval_mode
from robprune.config import names
from robprune.config.names import check_registry
from robprune.pruning.damage import DamageSetting, prune_damage
from robprune.pruning.loss import adversarial_loss

__all__ = [
    "MRS_ESTIMATORS",
    "DamageSetting",
    "adversarial_loss",
    "module_robust_sensitivity",
    "zero_mrs_warnings",
]


def _first_order(
    model: nn.Module,
    layers: dict[str, nn.Module],
    x_adv: Tensor,
    y: Tensor,
    *,
    epsilon: float,
    batch_size: int,
) -> dict[str, float]:
    model.zero_grad(set_to_none=True)
    adversarial_loss(model, x_adv, y, batch_size=batch_size, backward=True)
    scores = {}
    for name, layer in layers.items():
        w = layer.weight
        grad = w.grad if w.grad is not None else torch.zeros_like(w)
        scores[name] = float(epsilon * w.detach().norm() * grad.norm())
    model.zero_grad(set_to_none=True)
    return scores


def _ascent(
    model: nn.Module,
    layers: dict[str, nn.Module],
    x_adv: Tensor,
    y: Tensor,
    *,
    epsilon: float,
    steps: int,
    batch_size: int,
) -> dict[str, float]:
    base = adversarial_loss(model, x_adv, y, batch_size=batch_size)
    scores = {}
    for name, layer in layers.items():
        w = layer.weight
        original = w.detach().clone()
        radius = epsilon * float(original.norm())
        step = 2.5 * radius / steps
        delta = torch.zeros_like(original)
        try:
            for _ in range(steps):
                model.zero_grad(set_to_none=True)
                adversarial_loss(model, x_adv, y, batch_size=batch_size, backward=True)
                grad = w.grad
                if grad is None:  # no gradient reaches this layer: no ascent direction
                    break
                with torch.no_grad():
                    delta += step * grad / grad.norm().clamp_min(1e-12)
                    norm = delta.norm()
                    if norm > radius:
                        delta *= radius / norm
                    w.copy_(original + delta)
            scores[name] = adversarial_loss(model, x_adv, y, batch_size=batch_size) - base
        finally:
            with torch.no_grad():
                w.copy_(original)
            model.zero_grad(set_to_none=True)
    return scores


Estimator = Callable[..., dict[str, float]]

MRS_ESTIMATORS: dict[str, Estimator] = {
    "first_order": _first_order,
    "ascent": _ascent,
    "prune_damage": prune_damage,
}
check_registry("MRS estimator", names.MRS_ESTIMATORS, MRS_ESTIMATORS)


def module_robust_sensitivity(
    model: nn.Module,
    layers: dict[str, nn.Module],
    x_adv: Tensor,
    y: Tensor,
    *,
    estimator: str,
    epsilon: float,
    steps: int | None = None,
    batch_size: int = 256,
    damage: DamageSetting | None = None,
) -> dict[str, float]:
    """MRS of each named layer on fixed adversarial examples (eval mode, weights restored).

    `steps` is for estimators that iterate (ascent) and an error for those that do not. A layer
    no gradient reaches scores 0 (`zero_mrs_warnings` says so); all layers at 0 is an error.
    `damage` (the trial's criterion, target ratio, an example input and seed) is what
    `prune_damage` needs; the weight-ball estimators do not take it.
    """
    fn = MRS_ESTIMATORS[estimator]
    takes_steps = "steps" in inspect.signature(fn).parameters
    if takes_steps != (steps is not None):
        need = "needs" if takes_steps else "takes no"
        raise ValueError(f"MRS estimator {estimator!r} {need} steps, got steps={steps!r}")
    kwargs: dict[str, object] = {"steps": steps} if takes_steps else {}
    if "damage" in inspect.signature(fn).parameters:
        kwargs["damage"] = damage
    with eval_mode(model):
        scores = fn(model, layers, x_adv, y, epsilon=epsilon, batch_size=batch_size, **kwargs)
    if scores and all(v == 0 for v in scores.values()):
        raise ValueError(
            "MRS is 0 for every layer: no gradient of the adversarial loss reaches any weight "
            "(frozen or detached model?)"
        )
    return scores


def zero_mrs_warnings(scores: dict[str, float]) -> list[str]:
    """One warning per layer whose MRS is 0: its ratio then rests on no measurement."""
    return [
        f"MRS of layer {name} is 0: no gradient of the adversarial loss reaches its weight "
        "(unused or frozen), so the allocation treats it as the least sensitive layer"
        for name, value in scores.items()
        if value == 0
    ]
