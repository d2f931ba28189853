"""Effects read straight off the trials, beside the variance decomposition.

- `seed_noise`: how much repeating a configuration with another seed moves the response;
- `paper_view`: the spread across criteria within each fine-tuning method against the spread
  across methods within each criterion (the comparison the paper itself makes);
- `ratio_rule_effect`: each ratio rule (MRS and its variants) against uniform allocation at
  equal sparsity, with Welch intervals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.design import code_column
from analysis.estimable import NotEstimable
from analysis.formatting import response_label, to_units
from robprune.config.factors import FACTOR_COLUMNS, label

__all__ = [
    "BASELINE_RULE",
    "PaperView",
    "SeedNoise",
    "paper_view",
    "ratio_rule_effect",
    "seed_noise",
    "welch_interval",
]


@dataclass(frozen=True, kw_only=True)
class SeedNoise:
    """Spread of repeated runs of one configuration with different seeds."""

    sd: float
    df: int
    groups: int
    share: float  # seed variance / total variance


def seed_noise(trials: pd.DataFrame, response: str) -> SeedNoise | None:
    """Pooled within-configuration variance; None when no configuration was repeated."""
    groups = trials.groupby(list(FACTOR_COLUMNS), dropna=False, sort=False).ngroup()
    groups = groups.to_numpy()
    y = trials[response].to_numpy(dtype=float)
    counts = np.bincount(groups)
    sums = np.bincount(groups, weights=y)
    means = sums / np.maximum(counts, 1)
    ss = float(np.square(y - means[groups]).sum())
    df = int((counts[counts > 1] - 1).sum())
    if df == 0:
        return None
    variance = ss / df
    total = float(np.var(y, ddof=1)) if len(y) > 1 else 0.0
    return SeedNoise(
        sd=float(np.sqrt(variance)),
        df=df,
        groups=int((counts > 1).sum()),
        share=variance / total if total else 0.0,
    )


@dataclass(frozen=True, kw_only=True)
class PaperView:
    """Spreads of mean response within each method (across criteria) and the reverse."""

    table: pd.DataFrame
    summary: str


def paper_view(trials: pd.DataFrame, response: str) -> PaperView | NotEstimable:
    """Spread of mean response across criteria per method, and across methods per criterion."""
    for column in ("finetune_method", "criterion"):
        if trials[column].nunique(dropna=True) < 2:
            return NotEstimable(
                f"the {label(column)} takes a single value, so there is no spread to compare"
            )
    means = trials.groupby(["finetune_method", "criterion"], dropna=False)[response].mean()
    grid = means.unstack("criterion")
    rows = []
    for within, other, frame in (
        ("finetune_method", "criterion", grid),
        ("criterion", "finetune_method", grid.T),
    ):
        for level, values in frame.iterrows():
            values = values.dropna()
            if len(values) < 2:
                continue
            rows.append(
                {
                    "within": label(within),
                    "level": level,
                    "across": label(other),
                    "levels_compared": len(values),
                    "spread": float(values.max() - values.min()),
                    "sd": float(values.std(ddof=1)),
                    "best": values.idxmax(),
                    "worst": values.idxmin(),
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return NotEstimable("no fine-tuning method was run with two criteria (or the reverse)")
    by = table.groupby("within")["spread"].mean()
    crit_spread = by.get(label("finetune_method"), np.nan)
    method_spread = by.get(label("criterion"), np.nan)
    summary = (
        f"Within a fine-tuning method, the criteria differ by {to_units(response, crit_spread)} "
        f"on average (best minus worst mean {response_label(response)}); within a criterion, "
        f"the fine-tuning methods differ by {to_units(response, method_spread)}."
    )
    return PaperView(table=table, summary=summary)


#: The allocation every other ratio rule is compared with.
BASELINE_RULE = "uniform"


def ratio_rule_effect(trials: pd.DataFrame, response: str) -> pd.DataFrame | NotEstimable:
    """Each ratio rule minus uniform, mean response at each sparsity level, Welch 95% intervals.

    One row per (rule, sparsity); all other factors pooled. The achieved sparsities are shown
    so a reader can check that both rules met the same budget.
    """
    rules = set(trials["ratio_rule"].dropna())
    others = sorted(rules - {BASELINE_RULE})
    if BASELINE_RULE not in rules or not others:
        return NotEstimable("only one ratio rule was run (" + ", ".join(sorted(rules)) + ")")
    sparsity = code_column(trials["sparsity_target"])
    rows = []
    for rule in others:
        for i, level in enumerate(sparsity.levels):
            at = trials[sparsity.codes == i]
            base = at["ratio_rule"] == BASELINE_RULE
            this = at["ratio_rule"] == rule
            base_y = at.loc[base, response].to_numpy(dtype=float)
            rule_y = at.loc[this, response].to_numpy(dtype=float)
            lo, hi = welch_interval(rule_y, base_y)
            base_mean = base_y.mean() if len(base_y) else np.nan
            rule_mean = rule_y.mean() if len(rule_y) else np.nan
            rows.append(
                {
                    "rule": rule,
                    "sparsity": level,
                    "n_uniform": len(base_y),
                    "uniform": base_mean,
                    "n_rule": len(rule_y),
                    "rule_mean": rule_mean,
                    "achieved_uniform": at.loc[base, "achieved_sparsity"].mean(),
                    "achieved_rule": at.loc[this, "achieved_sparsity"].mean(),
                    "difference": rule_mean - base_mean,
                    "diff_lo": lo,
                    "diff_hi": hi,
                }
            )
    return pd.DataFrame(rows)


def welch_interval(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Interval for mean(a) - mean(b) without assuming equal variances (Welch's t)."""
    if len(a) < 2 or len(b) < 2:
        return np.nan, np.nan
    diff = float(a.mean() - b.mean())
    if a.var() == 0 and b.var() == 0:
        return diff, diff
    result = stats.ttest_ind(a, b, equal_var=False)
    ci = result.confidence_interval(confidence_level=level)
    return float(ci.low), float(ci.high)
