"""The `prune_damage` MRS estimator: a one-group sensitivity analysis on the adversarial loss.

For each prunable group, a copy of the model has that group alone pruned at the target ratio
with the trial's own criterion; the score is the rise of the adversarial loss on the fixed
calibration examples (Li et al. 2017's per-layer pruning sensitivity, measured on adversarial
examples). Unlike `first_order` and `ascent` it asks the question the allocation answers: what
does removing this group's channels cost? It depends on the criterion and the ratio, so its
cache key includes both (`robprune.trial`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import Tensor, nn

from robprune.attacks import eval_mode
from robprune.pruning.apply import prune_roots
from robprune.pruning.criteria import get_criterion
from robprune.pruning.groups import build_group_model, default_ignored_layers
from robprune.pruning.loss import adversarial_loss

__all__ = ["DamageSetting", "prune_damage"]


@dataclass(frozen=True, kw_only=True)
class DamageSetting:
    """What `prune_damage` needs beyond the calibration examples."""

    criterion: str
    """The trial's channel criterion (`CRITERIA`)."""
    ratio: float
    """Fraction of the group's channels removed (the trial's target sparsity, capped)."""
    example: Tensor
    """An input batch for tracing the dependency graph."""
    seed: int = 0
    """Seeds the `random` criterion."""


def prune_damage(
    model: nn.Module,
    layers: dict[str, nn.Module],
    x_adv: Tensor,
    y: Tensor,
    *,
    epsilon: float,
    batch_size: int,
    damage: DamageSetting | None = None,
) -> dict[str, float]:
    """Adversarial-loss rise per layer when its group alone is pruned (members share it).

    Layers in no prunable group (the first conv, the classifier) get no value. `epsilon` (the
    weight-ball radius of the other estimators) has no meaning here and is not used.
    """
    if damage is None:
        raise ValueError("the prune_damage estimator needs the trial's criterion and ratio")
    criterion = get_criterion(damage.criterion)
    with eval_mode(model):
        base = adversarial_loss(model, x_adv, y, batch_size=batch_size)
        _, gm = build_group_model(model, damage.example, default_ignored_layers(model))
    scores: dict[str, float] = {}
    for group in gm.groups:
        if not any(m in layers for m in group.members):
            continue
        trial = copy.deepcopy(model)
        prune_roots(
            trial,
            {group.root_name: damage.ratio},
            example=damage.example,
            criterion=criterion,
            calib=(x_adv, y),
            seed=damage.seed,
        )
        with eval_mode(trial):
            rise = adversarial_loss(trial, x_adv, y, batch_size=batch_size) - base
        for member in group.members:
            if member in layers:
                scores[member] = float(rise)
        del trial
    model.zero_grad(set_to_none=True)
    return scores
