"""The answer to the project's question, in words: which factor dominates the response.

By how much (with intervals), whether the top two can be told apart, and whether the winner's
share stands out from what seed noise alone would give it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.design import Design
from analysis.effects import SeedNoise
from analysis.estimable import NotEstimable
from analysis.formatting import fmt_share, points, response_label, sentence, to_units
from analysis.shares import Decomposition
from robprune.config.factors import label

__all__ = ["ALPHA", "Verdict", "verdict"]

ALPHA = 0.05
#: The two factors of the question, always named in the verdict when they vary.
_QUESTION = ("finetune_method", "criterion")


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The paragraph at the top of the report and the facts behind it."""

    headline: str
    text: str
    dominant: str | None
    runner_up: str | None
    distinguishable: bool


def _find(dec: Decomposition, column: str) -> int | None:
    """Index of the factor whose first column is `column` (a folded factor counts)."""
    for i, name in enumerate(dec.factors):
        if name.split("+")[0] == column:
            return i
    return None


def _title(design: Design, name: str) -> str:
    return next(f for f in design.factors if f.name == name).title


def verdict(
    dec: Decomposition | NotEstimable,
    design: Design,
    noise: SeedNoise | None,
    response: str,
) -> Verdict:
    """One paragraph: dominant factor, margin, intervals, and the comparison with seed noise."""
    what = response_label(response)
    if isinstance(dec, NotEstimable):
        return Verdict(
            headline=f"No verdict on {what}",
            text=f"The variance decomposition could not be estimated ({dec.reason})."
            + _unestimated_question_factors(design),
            dominant=None,
            runner_up=None,
            distinguishable=False,
        )
    order = np.argsort(-dec.shares)
    top = int(order[0])
    second = int(order[1]) if len(order) > 1 else None
    name = _title(design, dec.factors[top])
    text = _shares_sentence(dec, design, top, what)
    separated = True
    if second is not None:
        separated, margin = _margin(dec, design, top, second)
        text += margin
    text += _question_comparison(dec, top, second)
    p = dec.p_values[top]
    floor = dec.floors[top]
    above_floor = dec.lo[top] > floor if np.isfinite(floor) else True
    significant = bool(np.isfinite(p) and p < ALPHA and above_floor)
    text += _noise_sentence(noise, response, what)
    floor_text = fmt_share(floor) if np.isfinite(floor) else "unknown"
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
        dominant=dec.factors[top],
        runner_up=dec.factors[second] if second is not None else None,
        distinguishable=bool(significant and separated),
    )


def _shares_sentence(dec: Decomposition, design: Design, top: int, what: str) -> str:
    """The winner's share, then the question's factors' shares, then the method."""
    name = _title(design, dec.factors[top])
    parts = [
        f"{sentence(name)} explains the most of the variance of {what}: "
        f"{fmt_share(dec.shares[top], dec.lo[top], dec.hi[top])}"
    ]
    highlighted = {top}
    for idx in (_find(dec, column) for column in _QUESTION):
        if idx is not None and idx not in highlighted:
            share = fmt_share(dec.shares[idx], dec.lo[idx], dec.hi[idx])
            parts.append(f"{_title(design, dec.factors[idx])} {share}")
            highlighted.add(idx)
    text = parts[0] + (", against " + ", ".join(parts[1:]) if len(parts) > 1 else "") + "."
    return text + (
        f" (95% bootstrap intervals; {dec.label}; {dec.n} completed trials; "
        f"{fmt_share(dec.noise[0], dec.noise[1], dec.noise[2])} of the variance unexplained.)"
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
    ft, crit = (_find(dec, column) for column in _QUESTION)
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


def _noise_sentence(noise: SeedNoise | None, response: str, what: str) -> str:
    if noise is None:
        return (
            " No configuration was run with more than one seed, so the noise floor is the "
            "model's residual."
        )
    return (
        f" Seed noise: repeating a configuration with another seed moves {what} by "
        f"{to_units(response, noise.sd)} (SD over {noise.groups} repeated configurations),"
        f" {fmt_share(noise.share)} of its variance."
    )


def _unestimated_question_factors(design: Design) -> str:
    """Say so when a factor of the question was held fixed or not recorded at all."""
    out = []
    for column in _QUESTION:
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
