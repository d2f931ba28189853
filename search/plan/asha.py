"""How many epochs each trial of a search runs under ASHA, simulated as Ray's ASHA decides.

At each rung (grace x reduction^k epochs, below max_t) a trial stops when its result is below
the (1 - 1/reduction) percentile of the results recorded there before it; the first trial at a
rung always continues. Early trials of a search therefore run longer than the asymptotic
1/reduction per rung suggests (measured: a 40-trial search ran 1.5x the epochs of that
closed form). Trial quality is drawn at random (the same at every rung), with a fixed seed, and
the epochs are averaged over repetitions.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Sequence

__all__ = ["rungs", "asha_epochs"]

#: Trial-epochs simulated per plan (repetitions x trials x rungs stays small).
BUDGET = 20_000


def rungs(*, grace: int, reduction: int, max_t: int) -> list[int]:
    """Ray's milestones: grace x reduction^k below max_t (none without a reduction)."""
    if reduction < 2:
        return []
    out, rung = [], max(1, grace)
    while rung < max_t:
        out.append(rung)
        rung *= reduction
    return out


def _percentile(ordered: list[float], q: float) -> float:
    """numpy's default (linear) percentile of an ascending list."""
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def asha_epochs(
    epochs: Sequence[int], *, grace: int, reduction: int, max_t: int, seed: int = 0
) -> list[float]:
    """Expected epochs of each trial, in the order the search starts them."""
    marks = rungs(grace=grace, reduction=reduction, max_t=max_t)
    if not marks or not epochs:
        return [float(e) for e in epochs]
    reps = max(1, BUDGET // (len(epochs) * len(marks)))
    rng = random.Random(seed)
    totals = [0.0] * len(epochs)
    keep = 1 - 1 / reduction
    for _ in range(reps):
        recorded: dict[int, list[float]] = {m: [] for m in marks}
        for i, full in enumerate(epochs):
            quality, ran = rng.random(), full
            for mark in marks:
                if mark >= full:
                    break
                seen = recorded[mark]
                stop = bool(seen) and quality < _percentile(seen, keep)
                bisect.insort(seen, quality)
                if stop:
                    ran = mark
                    break
            totals[i] += ran
    return [t / reps for t in totals]
