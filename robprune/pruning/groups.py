"""Prunable groups of the dependency graph and a closed-form parameter count per ratio vector.

Torch-Pruning couples layers that must lose the same channels (residual adds, depthwise convs,
BatchNorm) into one group; a group is pruned as a unit, so it is the unit that gets a ratio and
an MRS value. The closed form lets the budget bisection run in microseconds instead of pruning
a copy of the model at every step; the pruned model is checked against it afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

__all__ = [
    "PrunableGroup",
    "GroupModel",
    "build_group_model",
    "default_ignored_layers",
    "group_model",
]


def default_ignored_layers(model: nn.Module) -> list[nn.Module]:
    """First conv, the classifier (last Linear), and whatever the model declares unprunable."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    ignored: list[nn.Module] = []
    if convs:
        ignored.append(convs[0])
    if linears:
        ignored.append(linears[-1])
    extra = getattr(model, "unprunable_modules", None)
    if callable(extra):
        ignored.extend(extra())
    return ignored


@dataclass(kw_only=True)
class PrunableGroup:
    root: nn.Module
    """The layer whose output channels define the group (Torch-Pruning's ratio key)."""
    root_name: str
    channels: int
    """Output channels of the root before pruning."""
    members: list[str] = field(default_factory=list)
    """Conv/Linear layers whose output channels the group prunes (they share one MRS)."""


@dataclass(frozen=True, kw_only=True)
class _ParamTerm:
    count: int
    out_group: int | None
    in_group: int | None


@dataclass(kw_only=True)
class GroupModel:
    groups: list[PrunableGroup]
    terms: list[_ParamTerm]

    @property
    def prunable_params(self) -> int:
        return sum(t.count for t in self.terms)

    def kept_channels(self, ratios: np.ndarray) -> np.ndarray:
        """Channels Torch-Pruning keeps per group: int(n * (1 - r)), at least 1."""
        n = np.array([g.channels for g in self.groups], dtype=np.int64)
        return np.maximum((n * (1.0 - np.asarray(ratios)) + 1e-9).astype(np.int64), 1)

    def ratios_for(self, kept: np.ndarray) -> np.ndarray:
        """Ratios under which Torch-Pruning keeps exactly `kept` channels per group."""
        n = np.array([g.channels for g in self.groups], dtype=np.float64)
        return 1.0 - (np.asarray(kept) + 0.5) / n

    def _params_with_kept(self, kept: np.ndarray) -> float:
        keep = kept / np.array([g.channels for g in self.groups])
        total = 0.0
        for t in self.terms:
            factor = 1.0
            if t.out_group is not None:
                factor *= keep[t.out_group]
            if t.in_group is not None:
                factor *= keep[t.in_group]
            total += t.count * factor
        return total

    def removed_fraction(self, ratios: np.ndarray) -> float:
        return self.removed_fraction_kept(self.kept_channels(ratios))

    def removed_fraction_kept(self, kept: np.ndarray) -> float:
        prunable = self.prunable_params
        return 0.0 if prunable == 0 else 1.0 - self._params_with_kept(kept) / prunable

    def refine(
        self, ratios: np.ndarray, *, target: float, max_ratio: float, tolerance: float = 0.005
    ) -> np.ndarray:
        """Move single channels until the budget is met within `tolerance` (half a point).

        Bisection over one scale factor can only step between whole-channel jumps; with few
        groups (a small CNN) the nearest step may miss the budget by more than a point. Greedy
        one-channel moves fix that; among the moves that bring the budget closer, the one that
        keeps every group nearest the rule's ratio (in points) wins, so the allocation the rule
        asked for survives the rounding (a tighter tolerance costs more moves, i.e. drift).
        """
        n = np.array([g.channels for g in self.groups], dtype=np.int64)
        wanted = n * (1.0 - np.asarray(ratios, dtype=np.float64))  # continuous kept channels
        floor = np.maximum(np.ceil(n * (1.0 - max_ratio)).astype(np.int64), 1)
        kept = self.kept_channels(ratios)
        error = self.removed_fraction_kept(kept) - target
        for _ in range(4 * int(n.sum())):
            if abs(error) <= tolerance:
                break
            best, best_key = None, None
            for i in range(len(n)):
                for delta in (-1, 1):
                    k = kept[i] + delta
                    if not floor[i] <= k <= n[i]:
                        continue
                    trial = kept.copy()
                    trial[i] = k
                    e = self.removed_fraction_kept(trial) - target
                    if abs(e) >= abs(error):
                        continue
                    drift = float(np.max(np.abs(trial - wanted) / n))
                    key = (max(abs(e), tolerance), drift) if abs(e) <= tolerance else (1.0, drift)
                    if best_key is None or key < best_key:
                        best, best_key = trial, key
            if best is None:
                break
            kept = best
            error = self.removed_fraction_kept(kept) - target
        return self.ratios_for(kept)


def build_group_model(
    model: nn.Module, example: torch.Tensor, ignored: list[nn.Module]
) -> tuple[tp.DependencyGraph, GroupModel]:
    """Trace `model` into a dependency graph and read its groups (for callers without one)."""
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    return dg, group_model(dg, model, ignored)


def group_model(dg: tp.DependencyGraph, model: nn.Module, ignored: list[nn.Module]) -> GroupModel:
    """The prunable groups of an already traced graph and the parameter terms they govern."""
    names = {m: n for n, m in model.named_modules()}
    groups: list[PrunableGroup] = []
    out_of: dict[nn.Module, int] = {}
    in_of: dict[nn.Module, int] = {}
    for group in dg.get_all_groups(
        ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]
    ):
        root = group[0].dep.target.module
        index = len(groups)
        pg = PrunableGroup(root=root, root_name=names[root], channels=dg.get_out_channels(root))
        for dep, _ in group:
            module = dep.target.module
            if not isinstance(module, nn.Module) or module not in names:
                continue
            if dg.is_out_channel_pruning_fn(dep.handler):
                out_of.setdefault(module, index)
                if isinstance(module, nn.Conv2d | nn.Linear) and names[module] not in pg.members:
                    pg.members.append(names[module])
            elif dg.is_in_channel_pruning_fn(dep.handler):
                in_of.setdefault(module, index)
        groups.append(pg)

    terms: list[_ParamTerm] = []
    for module in model.modules():
        out_g, in_g = out_of.get(module), in_of.get(module)
        if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d | nn.GroupNorm | nn.LayerNorm):
            in_g = None  # normalisation has one channel axis, governed by its group
            out_g = out_g if out_g is not None else in_of.get(module)
        depthwise = isinstance(module, nn.Conv2d) and module.groups > 1
        if depthwise:
            in_g = None  # weight is [C, 1, k, k]: its one channel axis is the output's
        for p in module.parameters(recurse=False):
            has_in_axis = p.dim() >= 2 and not depthwise
            term_out = out_g
            term_in = in_g if has_in_axis else None
            if p.dim() == 1 and out_g is None:
                term_out = None
            if term_out is not None or term_in is not None:  # else no group changes it
                terms.append(_ParamTerm(count=p.numel(), out_group=term_out, in_group=term_in))
    return GroupModel(groups=groups, terms=terms)
