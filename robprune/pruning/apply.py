"""Structured pruning to a parameter or MAC budget, checked against what Torch-Pruning did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torch_pruning as tp
from torch import Tensor, nn

from robprune.attacks import eval_mode
from robprune.config.names import PER_LAYER_LAMP
from robprune.pruning.allocation import AllocationParams, allocate_ratios
from robprune.pruning.criteria import Criterion, get_criterion
from robprune.pruning.groups import (
    BUDGETS,
    GroupModel,
    default_ignored_layers,
    group_model,
    prunable_macs_of,
)
from robprune.pruning.loss import adversarial_loss
from robprune.pruning.macs import count_macs

__all__ = [
    "PER_LAYER_LAMP",
    "PruneOutcome",
    "check_rule_criterion",
    "prune_model",
    "prune_roots",
    "count_macs_params",
]

#: Per-sample gradients for the Hessian criterion: enough for a stable diagonal estimate.
HESSIAN_SAMPLES = 64


@dataclass(kw_only=True)
class PruneOutcome:
    layers: list[dict[str, Any]]
    """The `layers` table (docs/results.md) (without experiment/trial_id)."""
    params_dense: int
    params: int
    flops_dense: int
    flops: int
    prunable_params: int
    achieved_sparsity: float
    """Fraction of prunable parameters removed."""
    prunable_macs: int = 0
    achieved_macs_sparsity: float = 0.0
    """Fraction of prunable MACs removed (PyTorch's FlopCounterMode per-module counts)."""
    budget: str = "params"
    """What `sparsity` was a fraction of (params | macs)."""
    warnings: list[str] = field(default_factory=list)


def check_rule_criterion(rule: str, criterion: str) -> None:
    """`lamp` only means something under the global ranking (ValueError otherwise)."""
    if criterion == "lamp" and rule != "global":
        raise ValueError(PER_LAYER_LAMP)


def count_macs_params(model: nn.Module, example: Tensor) -> tuple[int, int]:
    """Multiply-accumulates of one forward pass (what pruning papers call FLOPs; PyTorch's
    `FlopCounterMode` / 2, attention's matrix products included) and parameters."""
    return count_macs(model, example), sum(p.numel() for p in model.parameters())


def _prepare_scores(
    model: nn.Module, criterion, importance, calib: tuple[Tensor, Tensor] | None
) -> None:
    """Give gradient-based criteria the adversarial-loss gradients they score with."""
    if criterion.needs == "nothing":
        return
    if calib is None:
        raise ValueError(f"criterion {criterion.name!r} needs calibration examples")
    x_adv, y = calib
    with eval_mode(model):
        model.zero_grad(set_to_none=True)
        if criterion.needs == "grad":
            adversarial_loss(model, x_adv, y, backward=True)
        else:
            importance.zero_grad()
            n = min(HESSIAN_SAMPLES, x_adv.shape[0])
            losses = F.cross_entropy(model(x_adv[:n]), y[:n], reduction="none")
            for i, loss in enumerate(losses):
                model.zero_grad(set_to_none=True)
                loss.backward(retain_graph=i < n - 1)
                importance.accumulate_grad(model)


def _pruner(
    model: nn.Module, example: Tensor, importance: Any, ignored: list[nn.Module]
) -> tp.pruner.MetaPruner:
    """One trace of the model. Every candidate layer starts as its own local scope with ratio
    0; the caller gives the group roots their ratios (`_set_ratio`) before `_remove`."""
    return tp.pruner.MetaPruner(
        model,
        example,
        importance=importance,
        pruning_ratio=0.0,
        pruning_ratio_dict={m: 0.0 for _, m in _layers(model) if m not in ignored},
        ignored_layers=ignored,
    )


def _set_ratio(pruner: tp.pruner.MetaPruner, root: nn.Module, ratio: float) -> None:
    pruner.pruning_ratio_dict[root] = pruner.iterative_pruning_ratio_scheduler(
        float(ratio), pruner.iterative_steps
    )


def _remove(pruner: tp.pruner.MetaPruner, model: nn.Module, seed: int) -> None:
    """Remove the channels the criterion scores lowest (scores prepared by the caller)."""
    torch.manual_seed(seed)
    with eval_mode(model):
        pruner.step()
    model.zero_grad(set_to_none=True)


def prune_roots(
    model: nn.Module,
    ratio_of_root: dict[str, float],
    *,
    example: Tensor,
    criterion: Criterion,
    calib: tuple[Tensor, Tensor] | None,
    seed: int,
) -> None:
    """Prune only the groups rooted at the named layers, by their ratios (in place).

    The one-group sensitivity analysis (`prune_damage`) calls this on copies of the model.
    """
    modules = dict(model.named_modules())
    importance = criterion.make()
    pruner = _pruner(model, example, importance, default_ignored_layers(model))
    for name, ratio in ratio_of_root.items():
        _set_ratio(pruner, modules[name], ratio)
    _prepare_scores(model, criterion, importance, calib)
    _remove(pruner, model, seed)


def _channel_scores(pruner: Any, gm: GroupModel, ignored: list[nn.Module]) -> list[np.ndarray]:
    """The criterion's normalised score per channel of every group, in `gm.groups` order
    (Torch-Pruning's own per-group scores, averaged over channel groups as its pruner does)."""
    by_root: dict[nn.Module, np.ndarray] = {}
    for group in pruner.DG.get_all_groups(
        ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]
    ):
        imp = pruner.estimate_importance(group)
        if imp is None:
            raise ValueError(f"criterion gave no scores for {group[0].dep.target.module}")
        ch_groups = pruner._get_channel_groups(group)
        if ch_groups > 1:
            imp = imp.view(ch_groups, -1).mean(dim=0)
        by_root[group[0].dep.target.module] = imp.detach().double().cpu().numpy()
    return [by_root[g.root] for g in gm.groups]


@dataclass(kw_only=True)
class _Achieved:
    """Per layer: the achieved and planned channel ratio and its group's MRS; warnings."""

    ratio: dict[str, float] = field(default_factory=dict)
    planned: dict[str, float] = field(default_factory=dict)
    mrs: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _check_groups(
    gm: GroupModel, expected_kept: np.ndarray, planned: np.ndarray, group_mrs: np.ndarray
) -> _Achieved:
    """Compare what Torch-Pruning did per group with what the rule asked for."""
    out = _Achieved()
    for g, kept, plan, score in zip(gm.groups, expected_kept, planned, group_mrs, strict=True):
        actual = _out_channels(g.root)
        if actual != kept:
            out.warnings.append(
                f"Torch-Pruning kept {actual} of {g.channels} channels of "
                f"{g.root_name}, expected {kept}"
            )
        achieved = 1.0 - actual / g.channels
        if abs(achieved - plan) > max(0.01, 1.0 / g.channels) + 1e-9:
            out.warnings.append(
                f"{g.root_name}: achieved ratio {achieved:.4f} differs from the rule's "
                f"{plan:.4f} by more than max(1 point, one channel)"
            )
        for member in g.members:
            out.ratio[member] = achieved  # achieved channel ratio
            out.planned[member] = float(plan)
            if np.isfinite(score):
                out.mrs[member] = float(score)
    return out


def _layer_rows(
    model: nn.Module,
    dense_shapes: dict[str, tuple[int, int]],
    achieved: _Achieved,
    layer_mrs: dict[str, float] | None,
    layer_scores: dict[str, dict[str, float]] | None,
) -> list[dict[str, Any]]:
    """The `layers` table: one row per Conv/Linear layer, before and after."""
    rows = []
    for name, module in _layers(model):
        ch_before, p_before = dense_shapes[name]
        rows.append(
            {
                "layer": name,
                "mrs": achieved.mrs.get(name, (layer_mrs or {}).get(name)),
                "ratio": achieved.ratio.get(name, 0.0),
                "ratio_planned": achieved.planned.get(name, 0.0),
                "channels_before": ch_before,
                "channels_after": _out_channels(module),
                "params_before": p_before,
                "params_after": _param_count(module),
                **{
                    f"mrs_{estimator}": scores.get(name)
                    for estimator, scores in (layer_scores or {}).items()
                },
            }
        )
    return rows


def _group_mrs(gm: GroupModel, layer_mrs: dict[str, float] | None) -> np.ndarray:
    """Each group's MRS: the mean over its members that have one (NaN without MRS)."""
    return np.array(
        [
            np.mean([layer_mrs[m] for m in g.members if m in layer_mrs]) if layer_mrs else np.nan
            for g in gm.groups
        ]
    )


def _budget_warning(on_budget: float, sparsity: float, budget: str) -> list[str]:
    if abs(on_budget - sparsity) <= 0.01 + 1e-9:
        return []
    return [
        f"achieved sparsity {on_budget:.4f} of prunable {budget} differs from the target "
        f"{sparsity:.4f} by more than 1 point"
    ]


def prune_model(
    model: nn.Module,
    *,
    example: Tensor,
    criterion: str,
    sparsity: float,
    rule: str,
    allocation: AllocationParams | None = None,
    max_ratio: float,
    layer_mrs: dict[str, float] | None,
    layer_scores: dict[str, dict[str, float]] | None = None,
    calib: tuple[Tensor, Tensor] | None,
    seed: int,
    budget: str = "params",
) -> PruneOutcome:
    """Prune `model` in place so that `sparsity` of its prunable parameters (or MACs) go.

    Args:
        example: an input batch for tracing the dependency graph and counting MACs.
        criterion: importance name (`robprune.pruning.criteria.CRITERIA`).
        sparsity: target fraction of prunable parameters removed (uniform and MRS alike).
        rule: ratio rule name (`RATIO_RULES`).
        allocation: the MRS rules' knobs (temperature, band); defaults when None.
        max_ratio: no group loses more than this fraction of its channels.
        layer_mrs: MRS per Conv/Linear layer name (needed by the MRS rules, recorded when given).
        layer_scores: estimator name -> layer -> value, for every estimator the trial computed;
            recorded as `mrs_<estimator>` columns of the layers table.
        calib: fixed adversarial examples for Taylor and Hessian criteria.
        seed: seeds the `random` criterion.
        budget: `params` or `macs`: what `sparsity` is a fraction of (both are reported).
    """
    if budget not in BUDGETS:
        raise ValueError(f"budget {budget!r}; allowed: {', '.join(BUDGETS)}")
    check_rule_criterion(rule, criterion)
    crit, ignored = get_criterion(criterion), default_ignored_layers(model)
    dense = _Dense(shapes=_shapes(model), macs_params=count_macs_params(model, example))
    importance = crit.make()
    # the pruner's dependency graph also gives the groups the budget is solved over
    pruner = _pruner(model, example, importance, ignored)
    gm = group_model(pruner.DG, model, ignored, example=example)
    if not gm.groups:
        raise ValueError("the model has no prunable layers")
    _prepare_scores(model, crit, importance, calib)  # `global` ranks with these scores
    group_mrs = _group_mrs(gm, layer_mrs)
    target, cap_warning = _reachable(gm, sparsity, max_ratio, budget)
    planned = allocate_ratios(
        rule, group_mrs, gm.fraction(budget, max_ratio), target=target, max_ratio=max_ratio,
        params=allocation, unit="parameters" if budget == "params" else "MACs",
        channel_scores=_channel_scores(pruner, gm, ignored) if rule == "global" else None,
    )  # fmt: skip
    ratios = gm.refine(planned, target=target, max_ratio=max_ratio, budget=budget)
    for g, r in zip(gm.groups, ratios, strict=True):
        _set_ratio(pruner, g.root, r)
    _remove(pruner, model, seed)
    done = _check_groups(gm, gm.kept_channels(ratios), planned, group_mrs)
    outcome = _outcome(model, example, gm, dense, sparsity=sparsity, budget=budget)
    outcome.layers = _layer_rows(model, dense.shapes, done, layer_mrs, layer_scores)
    outcome.warnings = cap_warning + done.warnings + outcome.warnings
    return outcome


def _reachable(
    gm: GroupModel, sparsity: float, max_ratio: float, budget: str
) -> tuple[float, list[str]]:
    """The target the solve aims at: `sparsity`, or, when only whole channels stop it under
    the cap, the most the cap allows (with a one-line warning). A target beyond even the
    continuous reach is left to the solver, which fails the trial."""
    whole, continuous = gm.reach(max_ratio, budget)
    if sparsity <= whole + 1e-9 or sparsity > continuous + 1e-9:
        return sparsity, []
    unit = "parameters" if budget == "params" else "MACs"
    return whole, [
        f"prune.sparsity {sparsity:.4f} of prunable {unit} is unreachable in whole channels "
        f"under max_layer_ratio {max_ratio}: every group at the cap removes {whole:.4f}; "
        "pruned to that"
    ]


@dataclass(frozen=True, kw_only=True)
class _Dense:
    """The model before pruning: per-layer (channels, parameters), and (MACs, parameters)."""

    shapes: dict[str, tuple[int, int]]
    macs_params: tuple[int, int]


def _outcome(
    model: nn.Module,
    example: Tensor,
    gm: GroupModel,
    dense: _Dense,
    *,
    sparsity: float,
    budget: str,
) -> PruneOutcome:
    """Sizes before and after, the achieved fractions, and the budget warning (layers are
    filled in by the caller)."""
    flops_dense, params_dense = dense.macs_params
    flops, params = count_macs_params(model, example)
    achieved = (params_dense - params) / gm.prunable_params
    macs_left = prunable_macs_of(model, example, gm.mac_modules)
    achieved_macs = 1.0 - macs_left / gm.prunable_macs if gm.prunable_macs else 0.0
    on_budget = achieved if budget == "params" else achieved_macs
    return PruneOutcome(
        layers=[],
        params_dense=params_dense,
        params=params,
        flops_dense=flops_dense,
        flops=flops,
        prunable_params=gm.prunable_params,
        achieved_sparsity=float(achieved),
        prunable_macs=gm.prunable_macs,
        achieved_macs_sparsity=float(achieved_macs),
        budget=budget,
        warnings=_budget_warning(on_budget, sparsity, budget),
    )


def _layers(model: nn.Module):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]


def _shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """(output channels, parameters) per Conv/Linear layer."""
    return {n: (_out_channels(m), _param_count(m)) for n, m in _layers(model)}


def _out_channels(module: nn.Module) -> int:
    return int(module.out_channels if isinstance(module, nn.Conv2d) else module.out_features)


def _param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters(recurse=False))
