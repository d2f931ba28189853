"""Minimum detectable effect: the smallest difference the design could find 80% of the time.

A "no factor stands out" headline means little without it: was the search too small, or is the
effect truly small? For a factor with level counts n_i, within-block noise sigma^2 and the
residual degrees of freedom of the model, a difference delta between two levels (the others at
the mean) gives the factor's F-test the noncentrality lambda = n_h delta^2 / (2 sigma^2), n_h
the harmonic mean of the counts. The MDE is the delta at which the noncentral F reaches the
power at the level the verdict tests at (alpha over the number of factors, Holm's first step:
conservative for every factor). More seeds multiply the counts and the residual degrees of
freedom; the table for several seed counts says how many would have been needed.

For the criterion x fine-tuning interaction the difference is one of differences: how much
more switching between two methods changes the response under one criterion than under
another. The least detectable interaction with that contrast delta puts +-delta/4 on the four
cells (every other cell 0), so lambda = n_h delta^2 / (4 sigma^2), n_h the harmonic mean of the
cell counts; any other interaction with the same contrast is found more often.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = ["POWER", "SEED_COUNTS", "FactorPower", "interaction_mde", "mde", "power_table"]

POWER = 0.8
SEED_COUNTS = (1, 2, 3, 5, 10, 20)


@dataclass(frozen=True, kw_only=True)
class FactorPower:
    """What a factor's test needs: its level counts and the model it is tested in."""

    name: str  # the column
    title: str
    counts: np.ndarray  # trials per level (of the parent column, for a folded factor)
    df1: int | None = None  # the test's numerator df when it differs from len(counts) - 1
    levels: str = ""  # what a "level" is, in words ("fine-tuning method levels")


def _power(lam: float, df1: int, df2: int, alpha: float) -> float:
    crit = stats.f.isf(alpha, df1, df2)
    return float(stats.ncf.sf(crit, df1, df2, lam))


def mde(
    counts: np.ndarray,
    noise_var: float,
    df_res: int,
    alpha: float,
    power: float = POWER,
    df1: int | None = None,
) -> float:
    """Smallest level difference (response units) found with `power`; nan if not testable.

    `df1` is the test's numerator degrees of freedom when the levels compared are coarser
    than the levels tested (a folded factor: two methods differ, whatever their learning
    rates, and the F-test runs over every method-and-learning-rate level).
    """
    counts = np.asarray(counts, dtype=float)
    counts = counts[counts > 0]
    df1 = len(counts) - 1 if df1 is None else df1
    return _smallest(counts, noise_var, df_res, alpha, power, df1, spread=2.0)


def interaction_mde(
    cell_counts: np.ndarray, noise_var: float, df_res: int, alpha: float, df1: int
) -> float:
    """Smallest difference of differences (response units) between two levels of each of two
    factors that their interaction's F-test (`df1` numerator df) finds with `POWER`; nan if
    not testable. `cell_counts` are the trials in each cell of the two factors."""
    counts = np.asarray(cell_counts, dtype=float).ravel()
    return _smallest(counts[counts > 0], noise_var, df_res, alpha, POWER, df1, spread=4.0)


def _smallest(
    counts: np.ndarray,
    noise_var: float,
    df_res: int,
    alpha: float,
    power: float,
    df1: int,
    spread: float,
) -> float:
    """The delta with lambda = n_h delta^2 / (spread sigma^2) at which the test has `power`."""
    if df1 < 1 or df_res < 1 or not len(counts) or not np.isfinite(noise_var) or noise_var <= 0:
        return float("nan")
    hmean = len(counts) / float(np.sum(1.0 / counts))
    if _power(0.0, df1, df_res, alpha) >= power:
        return 0.0
    hi = 1.0
    while _power(hi, df1, df_res, alpha) < power:
        hi *= 2.0
        if hi > 1e9:
            return float("nan")
    lam = optimize.brentq(lambda x: _power(x, df1, df_res, alpha) - power, 0.0, hi, xtol=1e-6)
    return float(np.sqrt(spread * lam * noise_var / hmean))


def power_table(
    factors: list[FactorPower],
    noise_var: float,
    df_res: int,
    n: int,
    seeds: int,
    alpha: float,
    seed_counts: tuple[int, ...] = SEED_COUNTS,
) -> pd.DataFrame:
    """MDE of each factor for several seed counts, the design otherwise unchanged.

    Each seed repeats every configuration once more: counts scale by s/seeds, the model keeps
    its parameters (plus one block level per seed), the rest is residual.
    """
    seeds = max(seeds, 1)
    used = n - df_res  # parameters of the fitted model
    rows = []
    for s in sorted({*seed_counts, seeds}):
        scale = s / seeds
        trials = int(round(n * scale))
        df = int(trials - (used + s - seeds))
        row = {"seeds": s, "trials": trials, "residual_df": df, "current": s == seeds}
        for factor in factors:
            row[factor.name] = mde(factor.counts * scale, noise_var, df, alpha, df1=factor.df1)
        rows.append(row)
    return pd.DataFrame(rows)
