"""Per-layer pruning ratios at one global budget (DESIGN §2).

The temperature rule is this project's reconstruction of the paper's allocation, kept behind
`RATIO_RULES` so another rule is one entry: standardise MRS to z, weights
a_l = L * softmax(-z / T), ratios r_l = clip(c * a_l, 0, r_max), with c found by bisection so that
the removed fraction of prunable parameters meets the target. T -> inf gives uniform.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robprune.errors import TrialFailed

__all__ = ["mrs_weights", "solve_ratios", "RATIO_RULES"]


def mrs_weights(mrs: np.ndarray, temperature: float) -> np.ndarray:
    """a_l = L * softmax(-z_l / T): low sensitivity -> large weight -> pruned more."""
    mrs = np.asarray(mrs, dtype=np.float64)
    if mrs.size == 0:
        return mrs
    std = mrs.std()
    z = (mrs - mrs.mean()) / std if std > 0 else np.zeros_like(mrs)
    logits = -z / temperature
    logits -= logits.max()
    w = np.exp(logits)
    return mrs.size * w / w.sum()


def solve_ratios(
    weights: np.ndarray,
    removed_fraction: Callable[[np.ndarray], float],
    *,
    target: float,
    max_ratio: float,
    iterations: int = 200,
) -> np.ndarray:
    """Find c so that removed_fraction(clip(c * weights, 0, max_ratio)) meets `target`.

    `removed_fraction` is monotone in c, so bisection converges; channel rounding makes it a step
    function, and we return the smallest c whose budget is met (never under-prune).
    """
    weights = np.maximum(np.asarray(weights, dtype=np.float64), 1e-300)
    if target <= 0:
        return np.zeros_like(weights)

    def ratios(c: float) -> np.ndarray:
        return np.clip(c * weights, 0.0, max_ratio)

    hi = max_ratio / weights.min()
    reachable = removed_fraction(ratios(hi))
    if reachable < target - 1e-9:
        raise TrialFailed(
            f"sparsity {target:.3f} is unreachable with max_layer_ratio {max_ratio}: at most "
            f"{reachable:.3f} of prunable parameters can be removed"
        )
    lo = 0.0
    for _ in range(iterations):
        mid = 0.5 * (lo + hi) if hi / max(lo, 1e-300) < 4 else np.sqrt(max(lo, 1e-300) * hi)
        if removed_fraction(ratios(mid)) >= target:
            hi = mid
        else:
            lo = mid
    return ratios(hi)


def _uniform(mrs: np.ndarray, temperature: float) -> np.ndarray:
    return np.ones_like(np.asarray(mrs, dtype=np.float64))


#: name -> weights(mrs, temperature); the ratio rule is the weights, the budget solve is shared.
RATIO_RULES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "uniform": _uniform,
    "mrs": mrs_weights,
}
