"""Per-layer pruning ratios at one global budget (formulas and reasons: docs/mrs.md).

A ratio rule turns one sensitivity value per prunable group (or, for `global`, the criterion's
channel scores) into a one-parameter family of ratio vectors r(c), monotone in c; `solve_ratios`
bisects c until the removed fraction of prunable parameters (or MACs: the budget is whatever
`removed_fraction` counts) meets the target, so every rule is compared at the same budget. Rules
are keyed by name in `RATIO_RULES`: another reading of the paper is its family here plus its
entry in `robprune.config.names.RATIO_RULES` (what it reads, for the config and the factor table).

- `uniform`: r_l = c.
- `mrs` (scale-aware): a_l = (MRS_l / mean MRS)^(-1/T), r_l = clip(c * a_l, 0, r_max). Equal
  sensitivities give uniform ratios at any T; only ratios of MRS values matter.
- `mrs_band`: r_l = clip(c + lambda * s_l, 0, r_max), s_l = 1 - 2 m_l in [-1, 1] with m_l the
  min-max-normalised (or rank-normalised) MRS: a bounded band around uniform, as outlier-weighted
  layerwise sparsity (OWL) does.
- `mrs_zscore`: the first reading, a_l = L * softmax(-z_l / T) on standardised MRS, kept for
  comparison: it maps any two distinct values to z = -1 and +1, however close they are.
- `global`: one threshold c over every group's channel scores, each group's scores normalised
  by the criterion itself (Torch-Pruning's importances divide by the group's mean; LAMP by its
  own rule): r_l = min(fraction of group l's channels scoring below c, r_max). Torch-Pruning's
  `global_pruning=True` ignores `max_pruning_ratio`, so the ranking is solved here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robprune.config import names
from robprune.config.names import BAND_SCALES, check_registry
from robprune.errors import TrialFailed

__all__ = [
    "AllocationParams",
    "RatioFamily",
    "RatioRule",
    "RATIO_RULES",
    "BAND_SCALES",
    "allocate_ratios",
    "band_offsets",
    "global_family",
    "scale_aware_weights",
    "solve_ratios",
    "zscore_weights",
]


#: Sensitivities at or below this fraction of the largest (a loss that fell, or a rise within
#: noise of zero) are not measurements of *how* insensitive a group is: they are raised to the
#: smallest value above it, so they count as the least sensitive measured group, no less.
_FLOOR = 1e-3


@dataclass(frozen=True, kw_only=True)
class AllocationParams:
    """The knobs of the MRS rules; each rule reads only the ones in `RatioRule.parameters`."""

    temperature: float = 1.0
    """`mrs`, `mrs_zscore`: large -> uniform, small -> prune the least sensitive groups first."""
    band: float = 0.1
    """`mrs_band`: half-width lambda of the band around the uniform ratio."""
    band_scale: str = "minmax"
    """`mrs_band`: normalise MRS by min-max or by rank (ties share their mean rank)."""


@dataclass(frozen=True)
class RatioFamily:
    """Ratios as a monotone function of one scalar c, and the bracket the solve searches."""

    ratios: Callable[[float], np.ndarray]
    lo: float
    """r(lo) removes nothing."""
    hi: float
    """r(hi) removes as much as the rule allows."""
    max_ratio: float
    """No group loses more than this fraction of its channels."""
    log_scale: bool = False
    """Bisect geometrically while hi/lo is large (scale families span many decades)."""


@dataclass(frozen=True, kw_only=True)
class RatioRule:
    name: str
    family: Callable[..., RatioFamily]
    """(group MRS, params, max_ratio, scores) -> the family solved to the budget."""
    uses_mrs: bool
    uses_scores: bool = False
    """Reads the criterion's per-channel scores of every group (`global`)."""
    parameters: tuple[str, ...] = ()
    """Fields of `AllocationParams` the rule reads (the nested factors of the design)."""
    summary: str = ""


def _positive(mrs: np.ndarray) -> np.ndarray:
    """Values within noise of zero (<= _FLOOR x the largest) become the smallest measured one."""
    mrs = np.asarray(mrs, dtype=np.float64)
    top = mrs.max(initial=0.0)
    measured = mrs > _FLOOR * top
    if top <= 0 or not measured.any():
        return np.ones_like(mrs)  # nothing is measurably sensitive: all equal
    return np.where(measured, mrs, mrs[measured].min())


def scale_aware_weights(mrs: np.ndarray, temperature: float) -> np.ndarray:
    """a_l = (MRS_l / mean MRS)^(-1/T), rescaled to sum to L (the solve absorbs any scale)."""
    mrs = np.asarray(mrs, dtype=np.float64)
    if mrs.size == 0:
        return mrs
    m = _positive(mrs)
    logits = -(np.log(m) - np.log(m.mean())) / temperature
    logits -= logits.max()
    w = np.exp(logits)
    return mrs.size * w / w.sum()


def zscore_weights(mrs: np.ndarray, temperature: float) -> np.ndarray:
    """a_l = L * softmax(-z_l / T) on z-scored MRS: the first reading (`mrs_zscore`)."""
    mrs = np.asarray(mrs, dtype=np.float64)
    if mrs.size == 0:
        return mrs
    std = mrs.std()
    z = (mrs - mrs.mean()) / std if std > 0 else np.zeros_like(mrs)
    logits = -z / temperature
    logits -= logits.max()
    w = np.exp(logits)
    return mrs.size * w / w.sum()


def _mean_ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks, ties sharing their mean rank (so equal MRS get equal ratios)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    for v in np.unique(values):
        tied = values == v
        ranks[tied] = ranks[tied].mean()
    return ranks


def band_offsets(mrs: np.ndarray, scale: str) -> np.ndarray:
    """s_l = 1 - 2 m_l in [-1, 1]: +1 for the least sensitive group (pruned most)."""
    mrs = np.asarray(mrs, dtype=np.float64)
    if mrs.size < 2 or np.ptp(mrs) == 0:
        return np.zeros_like(mrs)
    if scale == "minmax":
        m = (mrs - mrs.min()) / np.ptp(mrs)
    elif scale == "rank":
        m = _mean_ranks(mrs) / (mrs.size - 1)
    else:
        raise ValueError(f"band scale {scale!r}; allowed: {', '.join(BAND_SCALES)}")
    return 1.0 - 2.0 * m


def _scale_family(weights: np.ndarray, max_ratio: float) -> RatioFamily:
    weights = np.maximum(np.asarray(weights, dtype=np.float64), 1e-300)
    return RatioFamily(
        ratios=lambda c: np.clip(c * weights, 0.0, max_ratio),
        lo=0.0,
        hi=max_ratio / weights.min(),
        max_ratio=max_ratio,
        log_scale=True,
    )


def _uniform(
    mrs: np.ndarray, params: AllocationParams, max_ratio: float, scores=None
) -> RatioFamily:
    return _scale_family(np.ones(len(mrs)), max_ratio)


def _mrs(mrs: np.ndarray, params: AllocationParams, max_ratio: float, scores=None) -> RatioFamily:
    return _scale_family(scale_aware_weights(mrs, params.temperature), max_ratio)


def _mrs_zscore(
    mrs: np.ndarray, params: AllocationParams, max_ratio: float, scores=None
) -> RatioFamily:
    return _scale_family(zscore_weights(mrs, params.temperature), max_ratio)


def global_family(scores: list[np.ndarray], max_ratio: float) -> RatioFamily:
    """r_l(c) = min(share of group l's (normalised) channel scores below c, r_max)."""
    if not scores:
        raise ValueError("the global ratio rule needs the criterion's scores of every group")
    ranked = [np.sort(np.asarray(s, dtype=np.float64)) for s in scores]
    everything = np.concatenate(ranked)
    if not np.all(np.isfinite(everything)):
        raise ValueError("the global ratio rule got a non-finite channel score")

    def ratios(c: float) -> np.ndarray:
        below = np.array([np.searchsorted(s, c, side="left") / len(s) for s in ranked])
        return np.minimum(below, max_ratio)

    span = float(everything.max() - everything.min()) + 1.0
    return RatioFamily(
        ratios=ratios,
        lo=float(everything.min()),
        hi=float(everything.max()) + span,
        max_ratio=max_ratio,
    )


def _global(
    mrs: np.ndarray, params: AllocationParams, max_ratio: float, scores=None
) -> RatioFamily:
    return global_family(scores or [], max_ratio)


def _mrs_band(
    mrs: np.ndarray, params: AllocationParams, max_ratio: float, scores=None
) -> RatioFamily:
    shift = params.band * band_offsets(mrs, params.band_scale)
    return RatioFamily(
        ratios=lambda c: np.clip(c + shift, 0.0, max_ratio),
        lo=-params.band,
        hi=max_ratio + params.band,
        max_ratio=max_ratio,
    )


_FAMILIES: dict[str, Callable[..., RatioFamily]] = {
    "uniform": _uniform,
    "mrs": _mrs,
    "mrs_band": _mrs_band,
    "mrs_zscore": _mrs_zscore,
    "global": _global,
}
check_registry("ratio rule", names.RATIO_RULES, _FAMILIES)
#: Each rule: its family here, its facts (reads MRS? which parameters?) in config.names.
RATIO_RULES: dict[str, RatioRule] = {
    name: RatioRule(
        name=name,
        family=_FAMILIES[name],
        uses_mrs=facts.uses_mrs,
        uses_scores=facts.uses_scores,
        parameters=facts.parameters,
        summary=facts.summary,
    )
    for name, facts in names.RATIO_RULES.items()
}


def solve_ratios(
    family: RatioFamily,
    removed_fraction: Callable[[np.ndarray], float],
    *,
    target: float,
    iterations: int = 200,
    unit: str = "parameters",
) -> np.ndarray:
    """Find c so that removed_fraction(family.ratios(c)) meets `target` (a fraction of `unit`).

    `removed_fraction` is monotone in c, so bisection converges; channel rounding makes it a step
    function, and we return the smallest c whose budget is met (never under-prune).
    """
    if target <= 0:
        return np.zeros_like(family.ratios(family.lo))
    reachable = removed_fraction(family.ratios(family.hi))
    if reachable < target - 1e-9:
        raise TrialFailed(
            f"sparsity {target:.3f} is unreachable with max_layer_ratio {family.max_ratio}: "
            f"at most {reachable:.3f} of prunable {unit} can be removed"
        )
    lo, hi = family.lo, family.hi
    for _ in range(iterations):
        if family.log_scale and hi >= 4 * max(lo, 1e-300):
            mid = np.sqrt(max(lo, 1e-300) * hi)
        else:
            mid = 0.5 * (lo + hi)
        if removed_fraction(family.ratios(mid)) >= target:
            hi = mid
        else:
            lo = mid
    return family.ratios(hi)


def allocate_ratios(
    rule: str,
    group_mrs: np.ndarray,
    removed_fraction: Callable[[np.ndarray], float],
    *,
    target: float,
    max_ratio: float,
    params: AllocationParams | None = None,
    channel_scores: list[np.ndarray] | None = None,
    unit: str = "parameters",
) -> np.ndarray:
    """Ratios per group under `rule`, solved so that `removed_fraction` meets `target`.

    `channel_scores` (the criterion's normalised score per channel, one array per group) is
    what `global` ranks; the other rules ignore it.
    """
    spec = RATIO_RULES[rule]
    group_mrs = np.asarray(group_mrs, dtype=np.float64)
    if spec.uses_mrs and not np.all(np.isfinite(group_mrs)):
        raise ValueError(f"ratio rule {rule!r} needs an MRS score for every prunable group")
    family = spec.family(group_mrs, params or AllocationParams(), max_ratio, channel_scores)
    return solve_ratios(family, removed_fraction, target=target, unit=unit)
