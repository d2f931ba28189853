"""The answer to the project's question, in words and small tables.

- `verdict`: which factor dominates the response, by how much, with intervals, and whether
  that is distinguishable from seed noise;
- `paper_view`: the spread across criteria within each fine-tuning method against the spread
  across methods within each criterion (the comparison the paper itself makes);
- `ratio_rule_effect`: uniform vs MRS allocation at equal sparsity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from analysis.design import Design, Factor, code_column, label
from analysis.shares import Decomposition
from robprune.results_schema import FACTOR_COLUMNS

__all__ = [
    "SeedNoise",
    "Verdict",
    "fmt_share",
    "paper_view",
    "ratio_rule_effect",
    "response_label",
    "seed_noise",
    "to_units",
    "verdict",
]

ALPHA = 0.05


def response_label(response: str) -> str:
    names = {"robust_acc": "robust accuracy", "clean_acc": "clean accuracy"}
    return names.get(response, response.replace("_", " "))


def to_units(response: str, value: float) -> str:
    """Accuracies (fractions) as accuracy points; other metrics as they are."""
    if response.endswith("_acc"):
        return f"{100 * value:.1f} points"
    return f"{value:.4g}"


def fmt_share(value: float, lo: float | None = None, hi: float | None = None) -> str:
    """A share in percent, with one decimal when the number (or its interval) is small."""
    fine = value < 0.01 or (lo is not None and hi is not None and hi - lo < 0.03)
    digits = 1 if fine else 0
    text = f"{100 * value:.{digits}f}%"
    if lo is not None and hi is not None:
        text += f" [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"
    return text


def _points(diff: float, lo: float, hi: float) -> str:
    """A difference of shares in percentage points, with its interval."""
    digits = 1 if hi - lo < 0.03 else 0
    return f"{100 * diff:.{digits}f} points [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass
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
    repeated = int((counts > 1).sum())
    df = int((counts[counts > 1] - 1).sum())
    if df == 0:
        return None
    variance = ss / df
    total = float(np.var(y, ddof=1)) if len(y) > 1 else 0.0
    return SeedNoise(float(np.sqrt(variance)), df, repeated, variance / total if total else 0.0)


@dataclass
class Verdict:
    """The paragraph at the top of the report and the facts behind it."""

    headline: str
    text: str
    dominant: str | None
    runner_up: str | None
    distinguishable: bool


def _find(dec: Decomposition, column: str) -> int | None:
    for i, name in enumerate(dec.factors):
        if name.split("+")[0] == column:
            return i
    return None


def _title(dec: Decomposition, design: Design, i: int) -> str:
    factor: Factor = next(f for f in design.factors if f.name == dec.factors[i])
    return factor.title


def verdict(
    dec: Decomposition | str,
    design: Design,
    noise: SeedNoise | None,
    response: str,
) -> Verdict:
    """One paragraph: dominant factor, margin, intervals, and the comparison with seed noise."""
    what = response_label(response)
    if isinstance(dec, str):
        missing = _missing_factors(design)
        return Verdict(
            f"No verdict on {what}",
            f"The variance decomposition could not be estimated ({dec}).{missing}",
            None,
            None,
            False,
        )
    order = np.argsort(-dec.shares)
    top = int(order[0])
    second = int(order[1]) if len(order) > 1 else None
    name = _title(dec, design, top)
    parts = [
        f"{_sentence(name)} explains the most of the variance of {what}: "
        f"{fmt_share(dec.shares[top], dec.lo[top], dec.hi[top])}"
    ]
    ft, crit = _find(dec, "finetune_method"), _find(dec, "criterion")
    highlighted = {top}
    for idx in (ft, crit):
        if idx is not None and idx not in highlighted:
            share = fmt_share(dec.shares[idx], dec.lo[idx], dec.hi[idx])
            parts.append(f"{_title(dec, design, idx)} {share}")
            highlighted.add(idx)
    text = parts[0] + (", against " + ", ".join(parts[1:]) if len(parts) > 1 else "") + "."
    text += (
        f" (95% bootstrap intervals; {dec.label}; {dec.n} completed trials; "
        f"{fmt_share(dec.noise[0], dec.noise[1], dec.noise[2])} of the variance unexplained.)"
    )
    separated = True
    if second is not None:
        diff, lo, hi = dec.difference(top, second)
        separated = lo > 0
        runner = _title(dec, design, second)
        if separated:
            ratio = dec.shares[top] / dec.shares[second] if dec.shares[second] > 0 else np.inf
            times = f", {ratio:.0f} times as much" if np.isfinite(ratio) and ratio >= 2 else ""
            text += f" It exceeds the next factor, {runner}, by {_points(diff, lo, hi)}{times}."
        else:
            text += (
                f" It is not clearly ahead of {runner} ({fmt_share(dec.shares[second])}): the "
                f"difference, {_points(diff, lo, hi)}, "
                "includes zero, so these data cannot tell which of the two dominates."
            )
    if ft is not None and crit is not None and {ft, crit} != {top, second}:
        diff, lo, hi = dec.difference(ft, crit)
        if lo > 0 or hi < 0:
            winner = "fine-tuning method" if diff > 0 else "criterion"
            text += (
                f" Between the two factors of the question, the {winner} matters more "
                f"(difference {_points(abs(diff), min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))})."
            )
        else:
            text += (
                " The fine-tuning method and the criterion cannot be told apart "
                f"(difference {_points(diff, lo, hi)})."
            )
    p = dec.p_values[top]
    above_floor = dec.lo[top] > dec.floors[top] if np.isfinite(dec.floors[top]) else True
    significant = bool(np.isfinite(p) and p < ALPHA and above_floor)
    if noise is not None:
        text += (
            f" Seed noise: repeating a configuration with another seed moves {what} by "
            f"{to_units(response, noise.sd)} (SD over {noise.groups} repeated configurations),"
            f" {fmt_share(noise.share)} of its variance."
        )
    else:
        text += " No configuration was run with more than one seed, so the noise floor is the "
        text += "model's residual."
    floor = dec.floors[top]
    floor_text = f"{fmt_share(floor)}" if np.isfinite(floor) else "unknown"
    p_text = "p < 1e-10" if np.isfinite(p) and p < 1e-10 else f"p = {p:.2g}"
    if significant:
        text += (
            f" The dominant share is well above what noise alone would give {name} "
            f"({floor_text}; {p_text}): the answer is distinguishable from seed noise."
        )
    else:
        text += (
            f" The dominant share is not distinguishable from what noise alone would give "
            f"{name} ({floor_text}; {p_text}): more seeds or trials are needed."
        )
    text += _missing_factors(design)
    if significant and separated:
        headline = f"The {name} dominates {what}"
    elif significant:
        headline = f"The {name} and the {_title(dec, design, second)} both matter for {what}; "
        headline += "neither clearly dominates"
    else:
        headline = f"No factor's effect on {what} stands out from seed noise"
    return Verdict(
        headline,
        text,
        dec.factors[top],
        dec.factors[second] if second is not None else None,
        bool(significant and separated),
    )


def _missing_factors(design: Design) -> str:
    missing = []
    for column in ("finetune_method", "criterion"):
        if column in design.constant:
            missing.append(
                f" The {label(column)} has a single level ({design.constant[column]}): its "
                "effect cannot be estimated from these trials."
            )
    return "".join(missing)


def paper_view(trials: pd.DataFrame, response: str) -> tuple[pd.DataFrame, str] | str:
    """Spread of mean response across criteria per method, and across methods per criterion."""
    for column in ("finetune_method", "criterion"):
        if trials[column].nunique(dropna=True) < 2:
            return f"the {label(column)} takes a single value, so there is no spread to compare"
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
        return "no fine-tuning method was run with two criteria (or the reverse)"
    by = table.groupby("within")["spread"].mean()
    crit_spread = by.get(label("finetune_method"), np.nan)
    method_spread = by.get(label("criterion"), np.nan)
    summary = (
        f"Within a fine-tuning method, the criteria differ by {to_units(response, crit_spread)} "
        f"on average (best minus worst mean {response_label(response)}); within a criterion, "
        f"the fine-tuning methods differ by {to_units(response, method_spread)}."
    )
    return table, summary


def ratio_rule_effect(trials: pd.DataFrame, response: str) -> pd.DataFrame | str:
    """MRS minus uniform mean response at each sparsity level, with Welch 95% intervals."""
    rules = set(trials["ratio_rule"].dropna())
    if not {"uniform", "mrs"} <= rules:
        return "only one ratio rule was run (" + ", ".join(sorted(rules)) + ")"
    sparsity = code_column(trials["sparsity_target"])
    rows = []
    for i, level in enumerate(sparsity.levels):
        at = trials[sparsity.codes == i]
        uni = at.loc[at["ratio_rule"] == "uniform", response].to_numpy(dtype=float)
        mrs = at.loc[at["ratio_rule"] == "mrs", response].to_numpy(dtype=float)
        row = {
            "sparsity": level,
            "n_uniform": len(uni),
            "uniform": uni.mean() if len(uni) else np.nan,
            "n_mrs": len(mrs),
            "mrs": mrs.mean() if len(mrs) else np.nan,
            "achieved_uniform": at.loc[at["ratio_rule"] == "uniform", "achieved_sparsity"].mean(),
            "achieved_mrs": at.loc[at["ratio_rule"] == "mrs", "achieved_sparsity"].mean(),
        }
        row["difference"] = row["mrs"] - row["uniform"]
        row["diff_lo"], row["diff_hi"] = _welch(mrs, uni)
        rows.append(row)
    return pd.DataFrame(rows)


def _welch(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    if len(a) < 2 or len(b) < 2:
        return np.nan, np.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    if se == 0:
        return float(a.mean() - b.mean()), float(a.mean() - b.mean())
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + level / 2, df) * se
    diff = a.mean() - b.mean()
    return float(diff - half), float(diff + half)
