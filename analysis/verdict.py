"""The answer to the project's question, in words: which factor dominates the response.

Whether the leading factor is distinguishable from seed noise is decided by its F-test on the
within-block residual, Holm-adjusted over all factors (family-wise type-I error at most ALPHA;
measured in docs/analysis.md). Its share and interval are reported beside the decision, never
mixed into it. Whether it dominates the runner-up is read from the bootstrap interval of the
difference of their shares. The minimum detectable effect of the question's two factors says
whether a negative answer means "small effect" or "too few trials".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.design import Design
from analysis.estimable import NotEstimable
from analysis.formatting import fmt_share, points, response_label, sentence, to_units
from analysis.power import POWER, FactorPower, mde
from analysis.shares import Decomposition
from robprune.config.factors import label

__all__ = ["ALPHA", "QUESTION", "Verdict", "question_power", "verdict"]

ALPHA = 0.05
#: The two factors of the question, always named in the verdict when they vary.
QUESTION = ("finetune_method", "criterion")


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The paragraph at the top of the report and the facts behind it."""

    headline: str
    text: str
    leading: str | None  # the factor with the largest share
    dominant: str | None  # the factor the headline says dominates (None when it names none)
    runner_up: str | None
    distinguishable: bool  # the leading factor's noise test rejected (Holm, ALPHA)
    mde: dict[str, float]  # question factor column -> minimum detectable difference


def _find(dec: Decomposition, column: str) -> int | None:
    """Index of the factor whose first column is `column` (a folded factor counts)."""
    for i, name in enumerate(dec.factors):
        if name.split("+")[0] == column:
            return i
    return None


def _title(design: Design, name: str) -> str:
    return next(f for f in design.factors if f.name == name).title


def question_power(dec: Decomposition, design: Design) -> list[FactorPower]:
    """Level counts of the question's factors that vary, for the MDE."""
    out = []
    for column in QUESTION:
        j = next((i for i, f in enumerate(design.factors) if f.columns[0] == column), None)
        if j is None:
            continue
        counts = np.bincount(design.codes[:, j], minlength=len(design.factors[j].levels))
        out.append(FactorPower(name=column, title=design.factors[j].title, counts=counts))
    return out


def verdict(dec: Decomposition | NotEstimable, design: Design, response: str) -> Verdict:
    """One paragraph: dominant factor, margin, intervals, noise test, detectable effect."""
    what = response_label(response)
    if isinstance(dec, NotEstimable):
        return Verdict(
            headline=f"No verdict on {what}",
            text=f"The variance decomposition could not be estimated ({dec.reason})."
            + _unestimated_question_factors(design),
            leading=None,
            dominant=None,
            runner_up=None,
            distinguishable=False,
            mde={},
        )
    order = np.argsort(-dec.shares, kind="stable")
    top = int(order[0])
    second = int(order[1]) if len(order) > 1 else None
    name = _title(design, dec.factors[top])
    text = _shares_sentence(dec, design, top, what)
    separated = True
    if second is not None:
        separated, margin = _margin(dec, design, top, second)
        text += margin
    text += _question_comparison(dec, top, second)
    text += _noise_sentence(dec, design, response)
    p = dec.p_adjusted[top]
    significant = bool(np.isfinite(p) and p < ALPHA)
    text += _decision_sentence(dec, name, top, significant)
    detectable = {
        f.name: mde(f.counts, dec.noise_var, dec.df_res, ALPHA / max(1, len(dec.factors)))
        for f in question_power(dec, design)
    }
    text += _mde_sentence(detectable, design, response)
    text += _unestimated_question_factors(design)
    if significant and separated:
        headline = f"The {name} dominates {what}"
    elif significant:
        runner = _title(design, dec.factors[second])  # type: ignore[index]
        headline = f"The {name} and the {runner} both matter for {what}; neither clearly dominates"
    else:
        headline = f"No factor's effect on {what} stands out from seed noise"
    return Verdict(
        headline=headline,
        text=text,
        leading=dec.factors[top],
        dominant=dec.factors[top] if significant and separated else None,
        runner_up=dec.factors[second] if second is not None else None,
        distinguishable=significant,
        mde=detectable,
    )


def _shares_sentence(dec: Decomposition, design: Design, top: int, what: str) -> str:
    """The winner's share, then the question's factors' shares, then the method."""
    name = _title(design, dec.factors[top])
    parts = [
        f"{sentence(name)} explains the most of the variance of {what}: "
        f"{fmt_share(dec.shares[top], dec.lo[top], dec.hi[top])}"
    ]
    highlighted = {top}
    for idx in (_find(dec, column) for column in QUESTION):
        if idx is not None and idx not in highlighted:
            share = fmt_share(dec.shares[idx], dec.lo[idx], dec.hi[idx])
            parts.append(f"{_title(design, dec.factors[idx])} {share}")
            highlighted.add(idx)
    text = parts[0] + (", against " + ", ".join(parts[1:]) if len(parts) > 1 else "") + "."
    return text + (
        f" (95% bootstrap intervals; {dec.label}; {dec.n} trials; "
        f"{fmt_share(*dec.noise)} of the variance unexplained.)"
    )


def _margin(dec: Decomposition, design: Design, top: int, second: int) -> tuple[bool, str]:
    """Whether the winner is clearly ahead of the runner-up, and the sentence saying so."""
    diff, lo, hi = dec.difference(top, second)
    runner = _title(design, dec.factors[second])
    if lo > 0:
        ratio = dec.shares[top] / dec.shares[second] if dec.shares[second] > 0 else np.inf
        times = f", {ratio:.0f} times as much" if np.isfinite(ratio) and ratio >= 2 else ""
        return True, f" It exceeds the next factor, {runner}, by {points(diff, lo, hi)}{times}."
    return False, (
        f" It is not clearly ahead of {runner} ({fmt_share(dec.shares[second])}): the "
        f"difference, {points(diff, lo, hi)}, "
        "includes zero, so these data cannot tell which of the two dominates."
    )


def _question_comparison(dec: Decomposition, top: int, second: int | None) -> str:
    """Fine-tuning method against criterion, when they are not already the top two."""
    ft, crit = (_find(dec, column) for column in QUESTION)
    if ft is None or crit is None or {ft, crit} == {top, second}:
        return ""
    diff, lo, hi = dec.difference(ft, crit)
    if lo > 0 or hi < 0:
        winner = "fine-tuning method" if diff > 0 else "criterion"
        low, high = sorted((abs(lo), abs(hi)))
        return (
            f" Between the two factors of the question, the {winner} matters more "
            f"(difference {points(abs(diff), low, high)})."
        )
    return (
        " The fine-tuning method and the criterion cannot be told apart "
        f"(difference {points(diff, lo, hi)})."
    )


def _p(p: float) -> str:
    if not np.isfinite(p):
        return "p not computable"
    return "p < 1e-10" if p < 1e-10 else f"p = {p:.2g}"


def _noise_sentence(dec: Decomposition, design: Design, response: str) -> str:
    """Within-block noise, and the dense-model variation as its own line."""
    sd = to_units(response, float(np.sqrt(max(dec.noise_var, 0.0))))
    if dec.block is None:
        why = (
            "no seed is shared by trials of different configurations"
            if design.block is None
            else "the seed blocks could not be fitted"
        )
        return f" Noise: {why}, so the noise is the model's residual, SD {sd} ({dec.df_res} df)."
    block = dec.block
    return (
        f" Dense-model variation (trials sharing a seed share a dense model; {block.levels} "
        f"seeds as blocks): {fmt_share(block.share, block.lo, block.hi)} of the variance "
        f"({_p(block.p_value)}). Within-block noise: SD {sd} ({dec.df_res} df)."
    )


def _decision_sentence(dec: Decomposition, name: str, top: int, significant: bool) -> str:
    m = len(dec.factors)
    test = (
        f"F-test on the within-block residual, Holm-adjusted over {m} factor"
        f"{'s' if m != 1 else ''}: {_p(dec.p_adjusted[top])}"
    )
    if significant:
        return f" The {name} effect is distinguishable from seed noise ({test}; α = {ALPHA})."
    return (
        f" The {name} effect is not distinguishable from seed noise ({test}; α = {ALPHA}): "
        "more seeds or trials are needed, or the effect is small."
    )


def _mde_sentence(detectable: dict[str, float], design: Design, response: str) -> str:
    found = {c: v for c, v in detectable.items() if np.isfinite(v)}
    if not found:
        return ""
    seeds = len(design.block.levels) if design.block is not None else None
    lead = f"With {seeds} seeds and this noise" if seeds else "With this design and noise"
    parts = [f"{to_units(response, v)} between two {label(c)} levels" for c, v in found.items()]
    return (
        f" {lead}, a difference of {' or '.join(parts)} would be detected "
        f"{100 * POWER:.0f}% of the time (minimum detectable effect)."
    )


def _unestimated_question_factors(design: Design) -> str:
    """Say so when a factor of the question was held fixed or not recorded at all."""
    out = []
    for column in QUESTION:
        if column in design.unrecorded:
            out.append(
                f" The {label(column)} is not recorded in these tables: its effect cannot be "
                "estimated."
            )
        elif column in design.constant:
            out.append(
                f" The {label(column)} has a single level ({design.constant[column]}): its "
                "effect cannot be estimated from these trials."
            )
    return "".join(out)
