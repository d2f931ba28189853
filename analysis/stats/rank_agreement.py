"""Does the strong attack suite rank the trials as the primary attack does?

Allocation rules and criteria can differ in how much gradient masking they cause, so a ranking
under PGD alone may not survive a stronger attack. This compares the two responses every
trial has since the strong suite exists: `robust_acc` (the primary attack, full test split) and
`strong_acc` (APGD-CE then APGD-T, worst case per image, on a fixed subset). Kendall's tau-b
over trials, with a percentile bootstrap interval over trials; the trials whose rank moves the
most, and the factor levels whose order (by mean) differs between the two.

The response choice lives here too: the report analyses `strong_acc` whenever every completed
trial has it, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from robprune.config.factors import FACTOR_COLUMNS
from robprune.formatting import percent

__all__ = [
    "PRIMARY",
    "STRONG",
    "RankAgreement",
    "choose_response",
    "rank_agreement",
    "agreement_lines",
]

PRIMARY, STRONG = "robust_acc", "strong_acc"
#: Trials whose rank moves by at least this fraction of the trials (and 2 places) are listed.
MOVE_FRACTION = 0.1
_RESAMPLES = 2000


def choose_response(ok: pd.DataFrame, requested: str | None) -> tuple[str, str]:
    """(response, why): the requested one, else strong_acc when every completed trial has a
    finite one, else robust_acc."""
    if requested is not None:
        return requested, "chosen with --response"
    values = pd.to_numeric(ok.get(STRONG, pd.Series(dtype=float)), errors="coerce")
    if len(ok) and len(values) == len(ok) and np.isfinite(values.to_numpy(dtype=float)).all():
        return STRONG, "every completed trial has the strong response"
    have = int(np.isfinite(values.to_numpy(dtype=float)).sum()) if len(values) else 0
    return PRIMARY, (
        f"{have} of {len(ok)} completed trials have the strong response (strong_acc), so the "
        "primary attack's robust_acc is analysed"
    )


@dataclass(frozen=True, kw_only=True)
class RankAgreement:
    """Kendall's tau-b between the primary attack's and the strong suite's accuracies."""

    n: int
    tau: float
    lo: float
    hi: float
    moved: pd.DataFrame
    """Trials ranked by both, largest rank change first."""
    levels: pd.DataFrame
    """Factor levels whose rank among their factor's levels differs between the two."""
    suite: str
    """What the strong response is, with its number of test images."""


def _tau(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau

    value = kendalltau(a, b, variant="b").statistic
    return float(value) if np.isfinite(value) else float("nan")


def _levels(trials: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for column in FACTOR_COLUMNS:
        if column not in trials or trials[column].nunique(dropna=True) < 2:
            continue
        means = trials.groupby(column, dropna=True)[[PRIMARY, STRONG]].mean()
        ranks = means.rank(ascending=False, method="min")
        for level, row in means.iterrows():
            if ranks.at[level, PRIMARY] != ranks.at[level, STRONG]:
                rows.append({"factor": column, "level": level, "primary_mean": row[PRIMARY],
                             "strong_mean": row[STRONG], "primary_rank": ranks.at[level, PRIMARY],
                             "strong_rank": ranks.at[level, STRONG]})  # fmt: skip
    return pd.DataFrame(rows)


def _suite(trials: pd.DataFrame) -> str:
    labels = sorted({str(v) for v in trials.get("strong_label", pd.Series(dtype=str)) if v})
    sizes = sorted({int(v) for v in trials.get("strong_n", pd.Series(dtype=float)).dropna()})
    if labels:
        return "; ".join(labels)
    return "the strong suite" + (f" on {'/'.join(map(str, sizes))} test images" if sizes else "")


def rank_agreement(
    ok: pd.DataFrame, *, resamples: int = _RESAMPLES, seed: int = 0
) -> RankAgreement | str:
    """The agreement over completed trials with both responses, or why there is none."""
    if PRIMARY not in ok or STRONG not in ok:
        return "the trials table has no strong response column (strong_acc)"
    both = ok[np.isfinite(ok[PRIMARY].astype(float)) & np.isfinite(ok[STRONG].astype(float))]
    n = len(both)
    if n == 0:
        return "no completed trial has the strong response (strong_acc)"
    if n < 3:
        return f"only {n} completed trials have both robust_acc and strong_acc (3 needed)"
    a, b = both[PRIMARY].to_numpy(dtype=float), both[STRONG].to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    boot = [_tau(a[i], b[i]) for i in (rng.integers(0, n, n) for _ in range(resamples))]
    boot = np.array([t for t in boot if np.isfinite(t)])
    lo, hi = np.quantile(boot, [0.025, 0.975]) if len(boot) else (np.nan, np.nan)
    keep = ["trial_id", *(c for c in FACTOR_COLUMNS if c in both), PRIMARY, STRONG]
    moved = both[keep].copy()
    moved["primary_rank"] = both[PRIMARY].rank(ascending=False, method="min").astype(int)
    moved["strong_rank"] = both[STRONG].rank(ascending=False, method="min").astype(int)
    moved["rank_change"] = moved["primary_rank"] - moved["strong_rank"]
    moved = moved.reindex(moved["rank_change"].abs().sort_values(ascending=False).index)
    return RankAgreement(
        n=n, tau=_tau(a, b), lo=float(lo), hi=float(hi), moved=moved.reset_index(drop=True),
        levels=_levels(both), suite=_suite(both),
    )  # fmt: skip


def agreement_lines(ok: pd.DataFrame, response: str, why: str) -> list[str]:
    """The report's sentences: which response is analysed and why, the rank agreement with
    its interval, what moves, and that the search objective stayed on validation."""
    found = rank_agreement(ok)
    what = (
        f"{response}: {found.suite}"
        if response == STRONG and not isinstance(found, str)
        else response
    )
    lines = [
        f"Response analysed: {what} ({why}). The search's objective stays on the cheaper "
        "validation attack (eval.epoch_attack on the validation subset); the strong response "
        "is measured once per trial on the test split and never selects."
    ]
    if isinstance(found, str):
        return [
            *lines,
            f"Rank agreement between the primary attack and the strong suite: {found}.",
        ]
    step = max(2, int(np.ceil(MOVE_FRACTION * found.n)))
    big = found.moved[found.moved["rank_change"].abs() >= step]
    lines.append(
        f"Rank agreement between the primary attack (robust_acc) and {found.suite} over "
        f"{found.n} trials: Kendall's tau-b {found.tau:.2f} (95% bootstrap interval "
        f"{found.lo:.2f} to {found.hi:.2f}). {len(big)} trials move by {step} or more places."
    )
    for _, row in big.head(10).iterrows():
        lines.append(
            f"Trial {row['trial_id']}: rank {row['primary_rank']} by the primary attack "
            f"({percent(row[PRIMARY])}), {row['strong_rank']} by the strong suite "
            f"({percent(row[STRONG])})."
        )
    for _, row in found.levels.iterrows():
        lines.append(
            f"{row['factor']} = {row['level']}: rank {int(row['primary_rank'])} of its levels by "
            f"the primary attack (mean {percent(row['primary_mean'])}), "
            f"{int(row['strong_rank'])} by the strong suite (mean "
            f"{percent(row['strong_mean'])})."
        )
    if found.levels.empty:
        lines.append("No factor's level order (by mean) changes between the two responses.")
    return lines
