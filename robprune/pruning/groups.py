"""Prunable groups of the dependency graph and a closed-form cost (parameters or MACs) per
ratio vector.

Torch-Pruning couples layers that must lose the same channels (residual adds, depthwise convs,
BatchNorm) into one group; a group is pruned as a unit, so it is the unit that gets a ratio and
an MRS value. The closed form lets the budget bisection run in microseconds instead of pruning
a copy of the model at every step; the pruned model is checked against it afterwards.

An input axis fed by a concatenation (MobileViT's fusion conv reads `cat(x, tokens)`) is split
into the slices each producer's group governs, so non-uniform ratios are counted exactly. MACs
are PyTorch's `FlopCounterMode` counts (FLOPs / 2, `robprune.pruning.macs`) of the Conv and
Linear layers a group changes: the "prunable MACs" of `budget: macs`. What no group changes
(attention's matrix products behind an unprunable qkv projection, ignored layers) is counted
in the totals (`flops`) but is not prunable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch_pruning as tp
from torch import nn

from robprune.config.names import BUDGETS
from robprune.pruning.macs import leaf_macs

_NORMS = (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)
__all__ = [
    "BUDGETS",
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
class _Term:
    """`count` units (parameters or MACs) scaled by the kept fraction of up to two groups."""

    count: float
    out_group: int | None
    in_group: int | None


@dataclass(kw_only=True)
class GroupModel:
    groups: list[PrunableGroup]
    terms: list[_Term]
    """Parameter terms."""
    mac_terms: list[_Term] = field(default_factory=list)
    """MAC terms (empty when built without an example input)."""
    mac_modules: dict[str, float] = field(default_factory=dict)
    """The modules the MAC terms cover, by name, with the MACs of theirs no group changes
    (a classifier's bias), which `prunable_macs_of` leaves out."""

    def _terms(self, budget: str) -> list[_Term]:
        if budget not in BUDGETS:
            raise ValueError(f"budget {budget!r}; allowed: {', '.join(BUDGETS)}")
        if budget == "macs" and not self.mac_terms:
            raise ValueError("MAC terms need an example input (build_group_model)")
        return self.terms if budget == "params" else self.mac_terms

    @property
    def prunable_params(self) -> int:
        return int(round(sum(t.count for t in self.terms)))

    @property
    def prunable_macs(self) -> int:
        return int(round(sum(t.count for t in self.mac_terms)))

    def kept_channels(self, ratios: np.ndarray, max_ratio: float | None = None) -> np.ndarray:
        """Channels Torch-Pruning keeps per group: int(n * (1 - r)), at least 1; with
        `max_ratio`, at least the channels the cap leaves (int() rounds the kept count down, so
        a ratio at the cap can remove one channel too many: 12 of 64 kept at cap 0.8)."""
        n = np.array([g.channels for g in self.groups], dtype=np.int64)
        kept = np.maximum((n * (1.0 - np.asarray(ratios)) + 1e-9).astype(np.int64), 1)
        return kept if max_ratio is None else np.maximum(kept, self.cap_floor(max_ratio))

    def cap_floor(self, max_ratio: float) -> np.ndarray:
        """The fewest channels each group may keep under `max_ratio`: ceil(n * (1 - cap))."""
        n = np.array([g.channels for g in self.groups], dtype=np.float64)
        return np.maximum(np.ceil(n * (1.0 - max_ratio) - 1e-9).astype(np.int64), 1)

    def reach(self, max_ratio: float, budget: str = "params") -> tuple[float, float]:
        """(whole-channel, continuous) fraction removed with every group at the cap: a target
        between the two is met only up to the first (whole channels), above both never."""
        whole = self.removed_fraction_kept(self.cap_floor(max_ratio), budget)
        n = np.array([g.channels for g in self.groups], dtype=np.float64)
        return whole, self.removed_fraction_kept(n * (1.0 - max_ratio), budget)

    def ratios_for(self, kept: np.ndarray) -> np.ndarray:
        """Ratios under which Torch-Pruning keeps exactly `kept` channels per group."""
        n = np.array([g.channels for g in self.groups], dtype=np.float64)
        return 1.0 - (np.asarray(kept) + 0.5) / n

    def _cost_with_kept(self, kept: np.ndarray, budget: str) -> float:
        keep = kept / np.array([g.channels for g in self.groups])
        total = 0.0
        for t in self._terms(budget):
            factor = 1.0
            if t.out_group is not None:
                factor *= keep[t.out_group]
            if t.in_group is not None:
                factor *= keep[t.in_group]
            total += t.count * factor
        return total

    def removed_fraction(
        self, ratios: np.ndarray, budget: str = "params", max_ratio: float | None = None
    ) -> float:
        return self.removed_fraction_kept(self.kept_channels(ratios, max_ratio), budget)

    def removed_fraction_kept(self, kept: np.ndarray, budget: str = "params") -> float:
        prunable = sum(t.count for t in self._terms(budget))
        return 0.0 if prunable == 0 else 1.0 - self._cost_with_kept(kept, budget) / prunable

    def fraction(self, budget: str, max_ratio: float | None = None):
        """`removed_fraction` for one budget (and cap), as the solver takes it."""
        return lambda ratios: self.removed_fraction(ratios, budget, max_ratio)

    def refine(
        self,
        ratios: np.ndarray,
        *,
        target: float,
        max_ratio: float,
        tolerance: float = 0.005,
        budget: str = "params",
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
        floor = self.cap_floor(max_ratio)
        kept = self.kept_channels(ratios, max_ratio)  # the cap holds from the first step
        error = self.removed_fraction_kept(kept, budget) - target
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
                    e = self.removed_fraction_kept(trial, budget) - target
                    if abs(e) >= abs(error):
                        continue
                    drift = float(np.max(np.abs(trial - wanted) / n))
                    key = (max(abs(e), tolerance), drift) if abs(e) <= tolerance else (1.0, drift)
                    if best_key is None or key < best_key:
                        best, best_key = trial, key
            if best is None:
                break
            kept = best
            error = self.removed_fraction_kept(kept, budget) - target
        return self.ratios_for(kept)


def build_group_model(
    model: nn.Module, example: torch.Tensor, ignored: list[nn.Module]
) -> tuple[tp.DependencyGraph, GroupModel]:
    """Trace `model` into a dependency graph and read its groups (for callers without one)."""
    dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    return dg, group_model(dg, model, ignored, example=example)


def module_macs(model: nn.Module, example: torch.Tensor) -> dict[nn.Module, int]:
    """MACs per Conv/Linear module for one example (eval mode), PyTorch's `FlopCounterMode`."""
    return leaf_macs(model, example)


def prunable_macs_of(model: nn.Module, example: torch.Tensor, names: dict[str, float]) -> float:
    """The prunable MACs the modules `GroupModel.mac_modules` names spend now (after pruning),
    measured with PyTorch's counter."""
    macs = module_macs(model, example)
    return sum(macs.get(m, 0) - names[n] for n, m in model.named_modules() if n in names)


def _read_groups(dg: tp.DependencyGraph, model: nn.Module, ignored: list[nn.Module]):
    """Groups, the group governing each module's output axis, and the in-axis slices
    (group, channels) each group governs (a concatenated input has one slice per producer)."""
    names = {m: n for n, m in model.named_modules()}
    groups: list[PrunableGroup] = []
    out_of: dict[nn.Module, int] = {}
    in_of: dict[nn.Module, dict[int, int]] = {}
    for group in dg.get_all_groups(
        ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]
    ):
        root = group[0].dep.target.module
        index = len(groups)
        pg = PrunableGroup(root=root, root_name=names[root], channels=dg.get_out_channels(root))
        for dep, idxs in group:
            module = dep.target.module
            if not isinstance(module, nn.Module) or module not in names:
                continue
            if dg.is_out_channel_pruning_fn(dep.handler):
                out_of.setdefault(module, index)
                if isinstance(module, nn.Conv2d | nn.Linear) and names[module] not in pg.members:
                    pg.members.append(names[module])
            elif dg.is_in_channel_pruning_fn(dep.handler):
                in_of.setdefault(module, {}).setdefault(index, len(idxs))
        groups.append(pg)
    return groups, out_of, in_of


def _in_width(module: nn.Module) -> int | None:
    if isinstance(module, nn.Conv2d):
        return module.in_channels
    if isinstance(module, nn.Linear):
        return module.in_features
    return None


def _split(count: float, out_g, slices: dict[int, int], width: int | None) -> list[_Term]:
    """One term per in-axis slice (and the ungoverned rest), each scaled by the out group."""
    if not slices or not width:
        return [_Term(count=count, out_group=out_g, in_group=None)] if out_g is not None else []
    terms = [
        _Term(count=count * n / width, out_group=out_g, in_group=g) for g, n in slices.items()
    ]
    rest = width - sum(slices.values())
    if rest > 0 and out_g is not None:
        terms.append(_Term(count=count * rest / width, out_group=out_g, in_group=None))
    return terms


def _module_terms(module: nn.Module, out_of, in_of, macs: int | None) -> tuple[list, list]:
    """(parameter terms, MAC terms) of one module."""
    out_g, slices = out_of.get(module), dict(in_of.get(module, {}))
    if isinstance(module, _NORMS):
        # normalisation has one channel axis, governed by its group
        out_g = out_g if out_g is not None else next(iter(slices), None)
        slices = {}
    depthwise = isinstance(module, nn.Conv2d) and module.groups > 1
    if depthwise:
        slices = {}  # weight is [C, 1, k, k]: its one channel axis is the output's
    width = _in_width(module)
    params: list[_Term] = []
    for p in module.parameters(recurse=False):
        has_in_axis = p.dim() >= 2 and not depthwise
        params += _split(p.numel(), out_g, slices if has_in_axis else {}, width)
    mac_terms: list[_Term] = []
    if macs and isinstance(module, nn.Conv2d | nn.Linear):
        # out * in * positions (or per group): scaled by both axes' kept fractions
        mac_terms += _split(macs, out_g, slices, width)
    return params, mac_terms


def group_model(
    dg: tp.DependencyGraph,
    model: nn.Module,
    ignored: list[nn.Module],
    *,
    example: torch.Tensor | None = None,
) -> GroupModel:
    """The prunable groups of an already traced graph and the parameter (and, given an
    `example`, MAC) terms they govern."""
    groups, out_of, in_of = _read_groups(dg, model, ignored)
    macs = module_macs(model, example) if example is not None else {}
    names = {m: n for n, m in model.named_modules()}
    terms: list[_Term] = []
    mac_terms: list[_Term] = []
    mac_modules: dict[str, int] = {}
    for module in model.modules():
        p, m = _module_terms(module, out_of, in_of, macs.get(module))
        terms += p
        if m:
            mac_terms += m
            mac_modules[names[module]] = macs[module] - sum(t.count for t in m)
    return GroupModel(groups=groups, terms=terms, mac_terms=mac_terms, mac_modules=mac_modules)
