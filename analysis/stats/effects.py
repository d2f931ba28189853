"""Effects read straight off the trials, beside the variance decomposition.

- `paper_view`: the spread across criteria within each fine-tuning method against the spread
  across methods within each criterion (the comparison the paper itself makes);
- `ratio_rule_effect`: each ratio rule (MRS and its variants) against uniform allocation at
  equal sparsity;
- `level_comparisons`: every pair of levels of the question's two factors.

Comparisons are paired: trials of the two levels are matched on the seed (so on the dense
model, whose variation cancels) and on every other factor, and the interval is a paired t
interval over the matched pairs. Only when no two pairs match (no shared seeds, or the other
factors always differ) is the interval Welch's, unpaired; the `comparison` column says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.design.coding import code_column
from analysis.design.estimable import NotEstimable
from analysis.design.factorial import NESTED
from analysis.stats.shares import holm
from robprune.config.factors import FACTOR_COLUMNS, label
from robprune.formatting import response_label, to_units

__all__ = [
    "BASELINE_RULE",
    "PaperView",
    "compare",
    "level_comparisons",
    "paired_interval",
    "paper_view",
    "ratio_rule_effect",
    "welch_interval",
]

#: Levels compared pairwise per factor at most (more would make a table nobody reads).
MAX_COMPARED_LEVELS = 8


@dataclass(frozen=True, kw_only=True)
class PaperView:
    """Spreads of mean response within each method (across criteria) and the reverse."""

    table: pd.DataFrame
    summary: str


def paper_view(
    trials: pd.DataFrame, response: str, cells: pd.DataFrame | None = None
) -> PaperView | NotEstimable:
    """Spread of mean response across criteria per method, and across methods per criterion.

    `cells` (fine-tuning method rows, criterion columns) are the estimated marginal means of
    the verdict, so missing cells do not bias the spreads; without them, raw cell means.
    """
    for column in ("finetune_method", "criterion"):
        if trials[column].nunique(dropna=True) < 2:
            return NotEstimable(
                f"the {label(column)} takes a single value, so there is no spread to compare"
            )
    if cells is not None:
        grid = cells.set_index(cells.columns[0])
        grid.columns.name = "criterion"
    else:
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
    kind = "estimated marginal mean" if cells is not None else "raw mean"
    summary = (
        f"Within a fine-tuning method, the criteria differ by {to_units(response, crit_spread)} "
        f"on average (best minus worst {kind} {response_label(response)}); within a criterion, "
        f"the fine-tuning methods differ by {to_units(response, method_spread)}."
    )
    return PaperView(table=table, summary=summary)


def _match_keys(trials: pd.DataFrame, column: str) -> pd.Series:
    """A key per trial: its seed and every factor but `column` and the columns nested in it."""
    others = [
        c
        for c in (*FACTOR_COLUMNS, "seed")
        if c in trials and c != column and NESTED.get(c) != column
    ]
    return pd.util.hash_pandas_object(trials[others], index=False)


def compare(
    trials: pd.DataFrame,
    response: str,
    column: str,
    level: object,
    baseline: object,
    keys: pd.Series | None = None,
) -> dict[str, object]:
    """Mean response of `level` minus `baseline`, paired within matched trials when possible.

    `keys` (from `_match_keys(trials, column)`) may be passed to hash the trials only once.
    """
    keys = _match_keys(trials, column) if keys is None else keys
    y = trials[response]
    this = (trials[column] == level).to_numpy()
    base = (trials[column] == baseline).to_numpy()
    by_this = y[this].groupby(keys[this].to_numpy()).mean()
    by_base = y[base].groupby(keys[base].to_numpy()).mean()
    pairs = (by_this - by_base).dropna()
    out: dict[str, object] = {"n_level": int(this.sum()), "n_baseline": int(base.sum())}
    if len(pairs) >= 2:
        lo, hi = paired_interval(pairs.to_numpy())
        d = pairs.to_numpy(dtype=float)
        p = float(stats.ttest_1samp(d, 0.0).pvalue) if np.ptp(d) > 0 else float(d[0] == 0)
        out.update(
            difference=float(pairs.mean()),
            diff_lo=lo,
            diff_hi=hi,
            p_value=p,
            pairs=len(pairs),
            comparison="paired within seed blocks, matched on the other factors",
        )
        return out
    a, b = y[this].to_numpy(dtype=float), y[base].to_numpy(dtype=float)
    lo, hi = welch_interval(a, b)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else np.nan
    p = (
        float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        if len(a) >= 2 and len(b) >= 2 and (a.var() > 0 or b.var() > 0)
        else np.nan
    )
    out.update(
        difference=diff,
        diff_lo=lo,
        diff_hi=hi,
        p_value=p,
        pairs=0,
        comparison="Welch, unpaired (fewer than two pairs match on seed and the other factors)",
    )
    return out


#: The allocation every other ratio rule is compared with.
BASELINE_RULE = "uniform"


#: The achieved-fraction column of each budget (prune.budget).
ACHIEVED = {"params": "achieved_sparsity", "macs": "achieved_macs_sparsity"}


def budgets_of(trials: pd.DataFrame) -> pd.Series:
    """Each trial's budget (params | macs); tables without the column were all params."""
    if "budget" not in trials.columns:
        return pd.Series("params", index=trials.index)
    return trials["budget"].fillna("params").astype(str)


def ratio_rule_effect(trials: pd.DataFrame, response: str) -> pd.DataFrame | NotEstimable:
    """Each ratio rule minus uniform at each (budget, sparsity) level, with 95% intervals.

    One row per (rule, budget, sparsity); paired within seed blocks and matched on the other
    factors where the design allows (the `comparison` column says which). `budget` says what
    was equal (prunable parameters or MACs); the achieved fraction of that budget is shown so a
    reader can check that both rules met it, and the rule's removed parameters and MACs both.
    """
    rules = set(trials["ratio_rule"].dropna())
    others = sorted(rules - {BASELINE_RULE})
    if BASELINE_RULE not in rules or not others:
        return NotEstimable("only one ratio rule was run (" + ", ".join(sorted(rules)) + ")")
    budget = budgets_of(trials)
    keys = _match_keys(trials, "ratio_rule")
    rows = []
    for name in sorted(budget.unique()):
        within = trials[budget == name]
        sparsity = code_column(within["sparsity_target"])
        for rule in others:
            for i, level in enumerate(sparsity.levels):
                at = within[sparsity.codes == i]
                rows.append(_rule_row(at, keys[at.index], rule, name, level, response))
    table = pd.DataFrame(rows)
    p_holm = holm(table["p_value"].to_numpy(dtype=float))
    return table.assign(p_holm=p_holm)


def _rule_row(
    at: pd.DataFrame, keys: pd.Series, rule: str, budget: str, level: object, response: str
) -> dict:
    result = compare(at, response, "ratio_rule", rule, BASELINE_RULE, keys)
    base = at["ratio_rule"] == BASELINE_RULE
    this = at["ratio_rule"] == rule

    def achieved(mask: pd.Series, column: str) -> float:
        return at.loc[mask, column].mean() if column in at.columns else np.nan

    return {
        "rule": rule,
        "budget": budget,
        "sparsity": level,
        "n_uniform": result["n_baseline"],
        "uniform": at.loc[base, response].mean(),
        "n_rule": result["n_level"],
        "rule_mean": at.loc[this, response].mean(),
        "achieved_uniform": achieved(base, ACHIEVED.get(budget, "achieved_sparsity")),
        "achieved_rule": achieved(this, ACHIEVED.get(budget, "achieved_sparsity")),
        "params_removed_rule": achieved(this, "achieved_sparsity"),
        "macs_removed_rule": achieved(this, "achieved_macs_sparsity"),
        **{k: result[k] for k in ("difference", "diff_lo", "diff_hi", "p_value", "pairs")},
        "comparison": result["comparison"],
    }


def level_comparisons(
    trials: pd.DataFrame, response: str, columns: tuple[str, ...]
) -> pd.DataFrame | NotEstimable:
    """Every pair of levels of each of `columns` (criterion vs criterion, method vs method)."""
    rows = []
    for column in columns:
        levels = sorted(trials[column].dropna().unique(), key=str)
        if not 2 <= len(levels) <= MAX_COMPARED_LEVELS:
            continue
        keys = _match_keys(trials, column)
        found = []
        for baseline, level in combinations(levels, 2):
            result = compare(trials, response, column, level, baseline, keys)
            found.append({"factor": label(column), "level": level, "baseline": baseline, **result})
        adjusted = holm(np.array([r["p_value"] for r in found], dtype=float))
        rows += [{**r, "p_holm": float(a)} for r, a in zip(found, adjusted, strict=True)]
    if not rows:
        return NotEstimable(
            f"neither factor has between 2 and {MAX_COMPARED_LEVELS} levels among these trials"
        )
    return pd.DataFrame(rows)


def paired_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """t interval for the mean of paired differences `d`."""
    d = np.asarray(d, dtype=float)
    mean = float(d.mean())
    if len(d) < 2 or np.all(d == d[0]):
        return mean, mean
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return mean - float(half), mean + float(half)


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
