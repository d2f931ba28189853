"""The `prune_damage` MRS estimator: a one-group sensitivity analysis on the adversarial loss.

For each prunable group, a copy of the model has that group alone pruned with the trial's own
criterion at the channel ratio the uniform rule solves for the trial's budget (the ratio that
removes `sparsity` of prunable parameters or MACs when every group gets it: about
1 - sqrt(1 - s) on a conv chain, not s); the copy's BatchNorm statistics are recalibrated
(when the setting says how), and the score is the rise of the adversarial loss on the fixed
calibration examples (Li et al. 2017's per-layer pruning sensitivity, measured on adversarial
examples). With an `attack` (`prune.mrs.reattack`) each copy is scored on examples made
against itself, so the rise is that of the pruned network's own adversarial loss rather
than of its loss on examples made against the dense one. Unlike `first_order` and `ascent` it
asks the question the allocation answers: what does removing this group's channels cost? Its
cache key is derived from `DamageSetting`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import Tensor, nn

from robprune.attacks import eval_mode
from robprune.pruning.allocation import allocate_ratios
from robprune.pruning.apply import prune_roots
from robprune.pruning.criteria import get_criterion
from robprune.pruning.groups import GroupModel, build_group_model, default_ignored_layers
from robprune.pruning.loss import adversarial_loss

__all__ = ["DamageSetting", "prune_damage", "uniform_probe_ratio"]


def uniform_probe_ratio(
    gm: GroupModel, *, sparsity: float, max_ratio: float, budget: str = "params"
) -> float:
    """The channel ratio the uniform rule gives every group at this budget."""
    if sparsity <= 0:
        return 0.0
    ratios = allocate_ratios(
        "uniform",
        np.full(len(gm.groups), np.nan),
        gm.fraction(budget),
        target=sparsity,
        max_ratio=max_ratio,
    )
    return float(ratios.max())


@dataclass(frozen=True, kw_only=True)
class DamageSetting:
    """What `prune_damage` needs beyond the calibration examples."""

    criterion: str
    """The trial's channel criterion (`CRITERIA`)."""
    example: Tensor
    """An input batch for tracing the dependency graph."""
    sparsity: float | None = None
    """The trial's budget: the probe ratio is the uniform rule's ratio for it."""
    max_ratio: float = 0.9
    budget: str = "params"
    ratio: float | None = None
    """A fixed channel ratio instead (tests, other readings); then `sparsity` is unused."""
    seed: int = 0
    """Seeds the `random` criterion."""
    recalibrate: Callable[[nn.Module], object] | None = None
    """Applied to each pruned copy before scoring (BatchNorm recalibration); None: none."""
    attack: Callable[[nn.Module], Tensor] | None = None
    """Makes the calibration examples against a given model (the inputs, threat and random
    start that made `x_adv` against the dense model); with it each pruned copy is scored on
    its own examples, after its recalibration. None: every copy is scored on `x_adv`."""

    def probe_ratio(self, gm: GroupModel) -> float:
        if self.ratio is not None:
            return float(self.ratio)
        if self.sparsity is None:
            raise ValueError("DamageSetting needs sparsity (the trial's budget) or a ratio")
        return uniform_probe_ratio(
            gm, sparsity=self.sparsity, max_ratio=self.max_ratio, budget=self.budget
        )


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
    weight-ball radius of the other estimators) has no meaning here and is not used. With
    `damage.attack`, `x_adv` must be what it makes against `model`: the rise is then the pruned
    copy's loss on its own examples over the dense model's on its own.
    """
    if damage is None:
        raise ValueError("the prune_damage estimator needs the trial's criterion and ratio")
    criterion = get_criterion(damage.criterion)
    with eval_mode(model):
        base = adversarial_loss(model, x_adv, y, batch_size=batch_size)
        _, gm = build_group_model(model, damage.example, default_ignored_layers(model))
    ratio = damage.probe_ratio(gm)
    scores: dict[str, float] = {}
    for group in gm.groups:
        if not any(m in layers for m in group.members):
            continue
        trial = copy.deepcopy(model)
        prune_roots(
            trial,
            {group.root_name: ratio},
            example=damage.example,
            criterion=criterion,
            calib=(x_adv, y),
            seed=damage.seed,
        )
        if damage.recalibrate is not None:
            damage.recalibrate(trial)
        with eval_mode(trial):
            probe = x_adv if damage.attack is None else damage.attack(trial)
            rise = adversarial_loss(trial, probe, y, batch_size=batch_size) - base
        for member in group.members:
            if member in layers:
                scores[member] = float(rise)
        del trial
    model.zero_grad(set_to_none=True)
    return scores
