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

__all__ = ["PrunableGroup", "GroupModel", "build_group_model", "default_ignored_layers"]


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


@dataclass
class PrunableGroup:
    root: nn.Module
    """The layer whose output channels define the group (Torch-Pruning's ratio key)."""
    root_name: str
    channels: int
    """Output channels of the root before pruning."""
    members: list[str] = field(default_factory=list)
    """Conv/Linear layers whose output channels the group prunes (they share one MRS)."""


@dataclass
class _ParamTerm:
    count: int
    out_group: int | None
    in_group: int | None


@dataclass
class GroupModel:
    groups: list[PrunableGroup]
    terms: list[_ParamTerm]
    fixed_params: int
    """Parameters no group touches."""

    @property
    def prunable_params(self) -> int:
        return sum(t.count for t in self.terms)

    def kept_channels(self, ratios: np.ndarray) -> np.ndarray:
        """Channels Torch-Pruning keeps per group: int(n * (1 - r)), at least 1."""
        n = np.array([g.channels for g in self.groups], dtype=np.int64)
        return np.maximum((n * (1.0 - np.asarray(ratios)) + 1e-9).astype(np.int64), 1)

    def prunable_params_after(self, ratios: np.ndarray) -> float:
        keep = self.kept_channels(ratios) / np.array([g.channels for g in self.groups])
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
        prunable = self.prunable_params
        return 0.0 if prunable == 0 else 1.0 - self.prunable_params_after(ratios) / prunable


def build_group_model(model: nn.Module, example: torch.Tensor,
                      ignored: list[nn.Module]) -> tuple[tp.DependencyGraph, GroupModel]:
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    names = {m: n for n, m in model.named_modules()}
    groups: list[PrunableGroup] = []
    out_of: dict[nn.Module, int] = {}
    in_of: dict[nn.Module, int] = {}
    for group in dg.get_all_groups(ignored_layers=ignored,
                                   root_module_types=[nn.Conv2d, nn.Linear]):
        root = group[0].dep.target.module
        index = len(groups)
        pg = PrunableGroup(root=root, root_name=names[root],
                           channels=dg.get_out_channels(root))
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
    fixed = 0
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        if not own:
            continue
        out_g, in_g = out_of.get(module), in_of.get(module)
        if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d | nn.GroupNorm | nn.LayerNorm):
            in_g = None  # normalisation has one channel axis, governed by its group
            out_g = out_g if out_g is not None else in_of.get(module)
        depthwise = isinstance(module, nn.Conv2d) and module.groups > 1
        if depthwise:
            in_g = None  # weight is [C, 1, k, k]: its one channel axis is the output's
        for name, p in module.named_parameters(recurse=False):
            has_in_axis = p.dim() >= 2 and not depthwise
            term_out = out_g
            term_in = in_g if has_in_axis else None
            if p.dim() == 1 and out_g is None:
                term_out = None
            if term_out is None and term_in is None:
                fixed += p.numel()
            else:
                terms.append(_ParamTerm(p.numel(), term_out, term_in))
    return dg, GroupModel(groups=groups, terms=terms, fixed_params=fixed)
