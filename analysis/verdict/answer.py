"""The headline: which of the question's two factors decides the response, by fixed rules.

The first sentence is one of a small set of answers (`ANSWERS`), each decided by a rule
stated in docs/analysis.md; a factor is said to matter only when its own Holm-adjusted F-test
rejects (the family: every factor and the fine-tuning x criterion interaction, ALPHA = 0.05).
Rules, in order:
1. cannot: a question factor did not vary, was not recorded, is aliased with another factor
   or cannot be tested (it adds nothing to the others' fit), or nothing could be estimated;
2. interaction: their interaction's test rejects (the effect of one depends on the other);
3. both tests reject: "<X> dominates" when the 95% interval of the difference of their shares
   excludes 0, else "both matter, neither dominates";
4. one test rejects: "only <X> is distinguishable", and whether its share is clearly larger;
5. neither rejects: "neither is distinguishable", with the minimum detectable effects.
The second sentence places the other factors (sparsity, ratio rule, ...) by the same test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.design.factorial import Design
from analysis.design.question import ALPHA, QUESTION
from analysis.stats.emm import Effect
from analysis.stats.shares import Decomposition
from robprune.config.factors import label
from robprune.formatting import fmt_p, share_points, to_units, to_units_interval

__all__ = ["ANSWERS", "Answer", "answer", "cannot_answer"]

#: Every headline answer, by code.
ANSWERS = (
    "finetune_dominates",
    "criterion_dominates",
    "both",
    "only_finetune",
    "only_criterion",
    "neither",
    "interaction",
    "cannot",
)
_SHORT = {"finetune_method": "finetune", "criterion": "criterion"}
#: Level of the interval of the difference of the two shares that decides "dominates": at 95%
#: the bootstrap interval named one of two equal-share factors dominant in 9-16% of simulated
#: tables (it undercovers); at 99% in at most 5% (docs/analysis.md).
DOMINANCE_LEVEL = 0.99


@dataclass(frozen=True, kw_only=True)
class Answer:
    """The headline's two sentences and the decision behind them."""

    code: str  # one of ANSWERS
    first: str
    second: str
    matters: tuple[str, ...]  # question columns whose own test rejected and the answer names
    dominant: str | None  # the question column said to dominate
    clearly_larger: bool | None = None  # for only_*: the share difference excludes 0


def _name(column: str) -> str:
    return label(column)


def _effect_text(response: str, eff: Effect, design: Design, j: int) -> str:
    """'12.3 points [10.1, 14.5], pgd_at over ce': best minus worst marginal mean."""
    text = to_units_interval(response, eff.size, eff.lo, eff.hi)
    if eff.best is None or eff.worst is None:
        return text
    levels = design.factors[j].levels
    return f"{text}, {levels[eff.best]} over {levels[eff.worst]}"


def cannot_answer(design: Design, dec: Decomposition | None) -> str | None:
    """Why the question cannot be answered from these trials, or None when it can."""
    reasons = []
    for column in QUESTION:
        if column in design.unrecorded:
            reasons.append(f"the {_name(column)} is not recorded")
        elif column in design.constant:
            reasons.append(f"the {_name(column)} took a single value ({design.constant[column]})")
        else:
            owner = next((f for f in design.factors if column in f.columns), None)
            if owner is None:
                reasons.append(f"the {_name(column)} is not among the analysed factors")
            elif owner.aliased:
                reasons.append(f"{owner.title} cannot be told apart on these trials (aliased)")
            elif dec is not None:
                j = design.factors.index(owner)
                if not np.isfinite(dec.p_values[j]):
                    reasons.append(
                        f"the {_name(column)} cannot be tested (it adds nothing to the other "
                        "factors' fit on these trials)"
                    )
    reasons = list(dict.fromkeys(reasons))
    return "; ".join(reasons) if reasons else None


def _matters(dec: Decomposition, j: int) -> bool:
    p = dec.p_adjusted[j]
    return bool(np.isfinite(p) and p < ALPHA)


def _testable(dec: Decomposition, design: Design, column: str) -> bool:
    """The column is a factor of its own (not aliased) with a test."""
    j = _index(design, column)
    return j is not None and not design.factors[j].aliased and bool(np.isfinite(dec.p_values[j]))


def _index(design: Design, column: str) -> int | None:
    return next((j for j, f in enumerate(design.factors) if f.columns[0] == column), None)


def answer(
    dec: Decomposition,
    design: Design,
    effects: list[Effect],
    response: str,
    what: str,
    mde: dict[str, float],
    cells: str = "",
    levels: dict[str, str] | None = None,
) -> Answer:
    """The headline for a decomposition that could be estimated (see the module's rules).

    `cells` describes the interaction's cell means (used only when the interaction rejects);
    `levels` says what the minimum detectable effects are differences between.
    """
    second = _context(dec, design, effects, response)
    why = cannot_answer(design, dec)
    if why is not None:
        first = (
            f"Whether the criterion or the fine-tuning decides {what} cannot be answered from "
            f"these trials: {why}"
        )
        varied = [c for c in QUESTION if _testable(dec, design, c)]
        matters = []
        for column in varied:
            j = _index(design, column)
            assert j is not None
            status = "is" if _matters(dec, j) else "is not"
            matters += [column] if _matters(dec, j) else []
            first += (
                f"; the {_name(column)} ({_effect_text(response, effects[j], design, j)}) "
                f"{status} distinguishable from noise"
            )
        return Answer(
            code="cannot", first=first, second=second, matters=tuple(matters), dominant=None
        )
    f, c = _index(design, "finetune_method"), _index(design, "criterion")
    assert f is not None and c is not None
    ft, cr = _matters(dec, f), _matters(dec, c)
    raw_f = _effect_text(response, effects[f], design, f)
    raw_c = _effect_text(response, effects[c], design, c)
    eff_f, eff_c = f"({raw_f})", f"({raw_c})"
    pair = dec.pair
    if pair is not None and np.isfinite(pair.p_adjusted) and pair.p_adjusted < ALPHA:
        mains = [n for n, m in (("fine-tuning method", ft), ("criterion", cr)) if m]
        averaged = (
            f"averaged over the other, {' and '.join('the ' + m for m in mains)} "
            f"{'are' if len(mains) > 1 else 'is'} distinguishable from noise as well"
            if mains
            else "averaged over the other, neither is distinguishable from noise"
        )
        first = (
            f"The effect of the criterion on {what} depends on the fine-tuning method: their "
            f"interaction is distinguishable from noise (Holm-adjusted {fmt_p(pair.p_adjusted)})"
            f"{': ' + cells if cells else ''}; {averaged}: fine-tuning method {raw_f}; "
            f"criterion {raw_c}"
        )
        matters = tuple(col for col, m in zip(QUESTION, (ft, cr), strict=True) if m)
        return Answer(
            code="interaction", first=first, second=second, matters=matters, dominant=None
        )
    diff, lo, hi = dec.difference(f, c, DOMINANCE_LEVEL)
    level = f"{100 * DOMINANCE_LEVEL:.0f}% interval"
    gap = f"{share_points(diff, lo, hi)}, {level}"
    flipped = f"{share_points(-diff, -hi, -lo)}, {level}"
    if ft and cr:
        if lo > 0 or hi < 0:
            top, low = (
                ("finetune_method", "criterion") if diff > 0 else ("criterion", "finetune_method")
            )
            big, small = (eff_f, eff_c) if diff > 0 else (eff_c, eff_f)
            first = (
                f"The {_name(top)} dominates {what}: both it {big} and the {_name(low)} "
                f"{small} are distinguishable from noise, and its share of the variance is "
                f"clearly larger, by {gap if diff > 0 else flipped}"
            )
            return Answer(
                code=f"{_SHORT[top]}_dominates",
                first=first,
                second=second,
                matters=QUESTION,
                dominant=top,
            )
        first = (
            f"Both the fine-tuning method and the criterion matter for {what}, and neither "
            f"clearly dominates: fine-tuning method {raw_f}; criterion {raw_c}; the difference "
            f"of their shares, {gap}, includes 0"
        )
        return Answer(code="both", first=first, second=second, matters=QUESTION, dominant=None)
    if ft or cr:
        one, other = ("finetune_method", "criterion") if ft else ("criterion", "finetune_method")
        j_other = c if ft else f
        eff_one, raw_other = (eff_f, raw_c) if ft else (eff_c, raw_f)
        clear = (lo > 0) if ft else (hi < 0)
        signed = gap if ft else flipped
        tail = (
            f"its share of the variance is clearly larger (by {signed})"
            if clear
            else f"the data cannot rule out that the {_name(other)} matters as much (the share "
            f"difference, {signed}, includes 0)"
        )
        first = (
            f"Only the {_name(one)} {eff_one} is distinguishable from noise for {what}, not the "
            f"{_name(other)} ({raw_other}; Holm-adjusted {fmt_p(dec.p_adjusted[j_other])}); "
            f"{tail}"
        )
        return Answer(
            code=f"only_{_SHORT[one]}",
            first=first,
            second=second,
            matters=(one,),
            dominant=None,
            clearly_larger=bool(clear),
        )
    first = (
        f"Neither the fine-tuning method nor the criterion is distinguishable from noise for "
        f"{what}: fine-tuning method {raw_f}; criterion {raw_c}"
    )
    found = {k: v for k, v in mde.items() if np.isfinite(v)}
    if found:
        names = levels or {}
        parts = [
            f"{to_units(response, v)} between two {names.get(k, _name(k) + ' levels')}"
            for k, v in found.items()
        ]
        first += (
            f"; this design would have found a difference of {' or '.join(parts)} 80% of the "
            "time (minimum detectable effect)"
        )
    return Answer(code="neither", first=first, second=second, matters=(), dominant=None)


def _context(dec: Decomposition, design: Design, effects: list[Effect], response: str) -> str:
    """The other factors, by the same rule: distinguishable from noise or not."""
    others = [
        j for j, factor in enumerate(design.factors) if not set(factor.columns) & set(QUESTION)
    ]
    if not others:
        return "No other factor varied in these trials."
    found, not_found = [], []
    for j in others:
        text = f"the {design.factors[j].title} ({_effect_text(response, effects[j], design, j)})"
        (found if _matters(dec, j) else not_found).append(text)
    parts = []
    if found:
        verb = "is" if len(found) == 1 else "are"
        parts.append(f"{_join(found)} {verb} distinguishable from noise")
    if not_found:
        verb = "is" if len(not_found) == 1 else "are"
        parts.append(
            f"{_join(not_found)} {verb} not" + ("" if found else " distinguishable from noise")
        )
    text = "; ".join(parts)
    return "Of the other factors, " + text + "."


def _join(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
