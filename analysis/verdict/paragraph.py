"""The paragraph at the top of the report: the headline answer and the numbers behind it.

The headline's two sentences come from `analysis.verdict.answer` (fixed answers, fixed rules). The
paragraph under it gives, for every factor, its effect in accuracy points (best minus worst
level of the estimated marginal means, 95% Tukey interval) beside its share of the variance,
the noise the tests were run against, the tests themselves, and the minimum detectable effect
of the question's two factors, so a negative answer says whether the search was too small.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from analysis.design.estimable import NotEstimable
from analysis.design.factorial import Design
from analysis.design.question import ALPHA, QUESTION
from analysis.stats import emm
from analysis.stats.power import POWER, FactorPower, interaction_mde, mde
from analysis.stats.shares import Decomposition
from analysis.verdict.answer import Answer, answer, cannot_answer
from robprune.config.factors import label
from robprune.formatting import (
    fmt_p,
    fmt_share,
    response_label,
    to_percent,
    to_units,
    to_units_interval,
)

__all__ = ["Verdict", "question_power", "tested_alpha", "verdict"]


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The paragraph at the top of the report and the facts behind it."""

    headline: str  # the answer's two sentences, without the final full stop
    text: str
    answer: str  # one of analysis.verdict.answer.ANSWERS
    matters: tuple[str, ...]  # question columns the headline says matter (their tests rejected)
    dominant: str | None  # the question column the headline says dominates
    distinguishable: bool  # some question factor's own test rejected
    interaction: bool  # the fine-tuning x criterion interaction's test rejected
    mde: dict[str, float]  # question factor column -> minimum detectable difference
    effects: list[emm.Effect] = field(default_factory=list)
    cells: pd.DataFrame | None = None  # fine-tuning x criterion cell means, when tested


def question_power(dec: Decomposition, design: Design) -> list[FactorPower]:
    """Level counts of the question's factors that vary, for the MDE."""
    out = []
    for column in QUESTION:
        j = next((i for i, f in enumerate(design.factors) if f.columns[0] == column), None)
        if j is None:
            continue
        factor = design.factors[j]
        parent = design.parent_codes.get(factor.name)
        if parent is not None:  # two parent levels differ, whatever their folded settings
            counts = np.bincount(parent)
            df1, levels = len(factor.levels) - 1, f"{label(column)} levels (each over all its "
            levels += f"{', '.join(label(c) for c in factor.columns[1:])} values)"
        else:
            counts = np.bincount(design.codes[:, j], minlength=len(factor.levels))
            df1, levels = None, f"{factor.title} levels"
        out.append(
            FactorPower(name=column, title=factor.title, counts=counts, df1=df1, levels=levels)
        )
    return out


def tested_alpha(dec: Decomposition) -> float:
    """The first step of Holm's procedure over the family the headline tests."""
    return ALPHA / max(1, len(dec.factors) + (dec.pair is not None))


def _not_estimable(dec: NotEstimable, design: Design, what: str) -> Verdict:
    why = cannot_answer(design, None)
    first = f"Whether the criterion or the fine-tuning decides {what} cannot be answered from "
    first += f"these trials: {why}" if why else f"these trials: {dec.reason}"
    return Verdict(
        headline=first,
        text=f"The variance decomposition could not be estimated ({dec.reason}).",
        answer="cannot",
        matters=(),
        dominant=None,
        distinguishable=False,
        interaction=False,
        mde={},
    )


def _cells(
    y: np.ndarray, design: Design, dec: Decomposition, response: str
) -> tuple[pd.DataFrame, str]:
    """Cell means of fine-tuning x criterion (marginal over the rest), as a table and words."""
    assert dec.pair is not None
    f, c = dec.pair.index
    model = emm.fit(y, design, (f, c) if f < c else (c, f))
    means = emm.cell_means(model)
    if f > c:
        means = means.T
    methods, criteria = design.factors[f].levels, design.factors[c].levels
    table = pd.DataFrame(means, index=list(methods), columns=list(criteria))
    table.index.name = "fine-tuning method"
    words = []
    for i, method in enumerate(methods):
        row = means[i]
        ok = np.flatnonzero(np.isfinite(row))
        if len(ok) < 2:
            continue
        hi, lo = ok[np.argmax(row[ok])], ok[np.argmin(row[ok])]
        words.append(
            f"under {method} the criteria range from {to_percent(response, row[lo])} "
            f"({criteria[lo]}) to {to_percent(response, row[hi])} ({criteria[hi]})"
        )
    text = "; ".join(words[:6]) + ("; ..." if len(words) > 6 else "")
    if text:
        text += " (cell means, marginal over the other factors)"
    return table.reset_index(), text


def verdict(
    dec: Decomposition | NotEstimable, design: Design, response: str, y: np.ndarray
) -> Verdict:
    """The headline answer and one paragraph of numbers behind it."""
    what = response_label(response)
    if isinstance(dec, NotEstimable):
        return _not_estimable(dec, design, what)
    y = np.asarray(y, dtype=float)
    effects = [
        eff if p < ALPHA else replace(eff, lo=0.0 if np.isfinite(eff.lo) else eff.lo)
        for eff, p in zip(
            emm.effects(y, design, dec.noise_var, dec.df_res),
            np.nan_to_num(dec.p_adjusted, nan=1.0),
            strict=True,
        )
    ]
    powers = question_power(dec, design)
    detectable = {
        f.name: mde(f.counts, dec.noise_var, dec.df_res, tested_alpha(dec), df1=f.df1)
        for f in powers
    }
    levels = {f.name: f.levels for f in powers}
    cells, cells_text = (None, "")
    if dec.pair is not None:
        cells, cells_text = _cells(y, design, dec, response)
    found: Answer = answer(dec, design, effects, response, what, detectable, cells_text, levels)
    text = _shares_sentence(dec, design, what)
    text += _effects_sentence(design, effects, response)
    text += _noise_sentence(dec, design, response)
    text += _tests_sentence(dec, design)
    titles = tuple(design.factors[i].title for i in dec.pair.index) if dec.pair else ("", "")
    interaction = _interaction_mde(dec, design)
    text += _mde_sentence(detectable, design, response, levels, interaction, titles)
    return Verdict(
        headline=f"{found.first}. {found.second}".removesuffix("."),
        text=text.strip(),
        answer=found.code,
        matters=found.matters,
        dominant=found.dominant,
        distinguishable=bool(found.matters),
        interaction=found.code == "interaction",
        mde=detectable,
        effects=effects,
        cells=cells,
    )


def _shares_sentence(dec: Decomposition, design: Design, what: str) -> str:
    """Every line of the decomposition, largest first; they add to 100% by construction."""
    titles = {f.name: f.title for f in design.factors}
    parts = []
    for i in np.argsort(-dec.shares, kind="stable"):
        name = titles.get(dec.factors[i], dec.factors[i])
        parts.append(f"{name} {fmt_share(dec.shares[i], dec.lo[i], dec.hi[i])}")
    if dec.block is not None:
        b = dec.block
        parts.append(f"dense-model variation {fmt_share(b.share, b.lo, b.hi)}")
    interactions = dec.terms.loc[dec.terms["kind"] == "interaction", "share"]
    if len(interactions):
        parts.append(f"interactions {fmt_share(float(interactions.sum()))} together")
    parts.append(f"unexplained {fmt_share(*dec.noise)}")
    return (
        f"Shares of the variance of {what} ({dec.label}, {dec.n} trials, 95% bootstrap "
        f"intervals): {', '.join(parts)}."
    )


def _effects_sentence(design: Design, effects: list[emm.Effect], response: str) -> str:
    """Each factor's effect in the response's units, next to the shares."""
    parts = [
        f"{factor.title} {to_units_interval(response, eff.size, eff.lo, eff.hi)}"
        for factor, eff in zip(design.factors, effects, strict=True)
        if eff.best is not None and eff.worst is not None
    ]
    if not parts:
        return ""
    return (
        " Effects, best minus worst level of the estimated marginal means (an additive model"
        f"{' with the seed blocks' if design.block is not None else ''}, averaged over the "
        "other factors' levels so missing cells do not "
        "bias them; 95% Tukey intervals, simultaneous over each factor's pairs of levels, with "
        "the lower bound set to 0 when the factor's own test does not reject): "
        + ", ".join(parts)
        + "."
    )


def _noise_sentence(dec: Decomposition, design: Design, response: str) -> str:
    """Within-block noise and the dense-model variation, or why there is no block."""
    sd = to_units(response, float(np.sqrt(max(dec.noise_var, 0.0))))
    if dec.block is None:
        why = design.block_reason or "the seed blocks could not be fitted"
        return (
            f" Noise: {why}; the noise is the residual of the model ({dec.model}), SD {sd} "
            f"({dec.df_res} df)."
        )
    block = dec.block
    return (
        f" Dense-model variation (trials sharing a seed share a dense model; {block.levels} "
        f"seeds as blocks): {fmt_share(block.share, block.lo, block.hi)} of the variance "
        f"({fmt_p(block.p_value)}). Noise: the residual of the model ({dec.model}), SD {sd} "
        f"({dec.df_res} df)."
    )


def _tests_sentence(dec: Decomposition, design: Design) -> str:
    m = len(dec.factors) + (dec.pair is not None)
    titles = {f.name: f.title for f in design.factors}
    parts = [
        f"{titles.get(n, n)} {fmt_p(p)}" for n, p in zip(dec.factors, dec.p_adjusted, strict=True)
    ]
    family = f"{len(dec.factors)} factor{'s' if len(dec.factors) != 1 else ''}"
    if dec.pair is not None:
        parts.append(f"criterion × fine-tuning method interaction {fmt_p(dec.pair.p_adjusted)}")
        family += " and the criterion × fine-tuning method interaction"
    return (
        f" Tests: F-tests on that residual, Holm-adjusted over the {family} ({m} tests, "
        f"family-wise error at most {ALPHA:g}); a factor is distinguishable from noise when "
        f"its adjusted p is below {ALPHA:g}: {', '.join(parts)}."
    )


def _interaction_mde(dec: Decomposition, design: Design) -> float:
    """The question's interaction MDE where its test did not reject (nan otherwise): a reader
    of "no interaction" should know how large one could have gone unseen."""
    pair = dec.pair
    if pair is None or (np.isfinite(pair.p_adjusted) and pair.p_adjusted < ALPHA):
        return float("nan")
    f, c = pair.index
    cells = np.zeros((len(design.factors[f].levels), len(design.factors[c].levels)))
    np.add.at(cells, (design.codes[:, f], design.codes[:, c]), 1)
    # the partial F-test's model has the interaction's parameters on top of the additive one
    df_res = dec.df_res - (pair.df if pair.source != "ANOVA table" else 0)
    return interaction_mde(cells, dec.noise_var, df_res, tested_alpha(dec), df1=pair.df)


def _mde_sentence(
    detectable: dict[str, float],
    design: Design,
    response: str,
    levels: dict[str, str],
    interaction: float = float("nan"),
    pair_titles: tuple[str, str] = ("", ""),
) -> str:
    found = {c: v for c, v in detectable.items() if np.isfinite(v)}
    if not found and not np.isfinite(interaction):
        return ""
    seeds = len(design.block.levels) if design.block is not None else None
    lead = f"With {seeds} seeds and this noise" if seeds else "With this design and noise"
    parts = [f"{to_units(response, v)} between two {levels[c]}" for c, v in found.items()]
    text = f" {lead}, "
    if parts:
        text += f"a difference of {' or '.join(parts)} would be detected "
        text += f"{100 * POWER:.0f}% of the time"
    if not np.isfinite(interaction):
        return text + " (minimum detectable effect)."
    method, criterion = pair_titles
    text += "; " if parts else ""
    text += (
        f"an interaction would be detected at least {100 * POWER:.0f}% of the time when "
        f"switching between two {method} levels changes {response_label(response)} by "
        f"{to_units(response, interaction)} more under one {criterion} level than under another"
    )
    return text + " (minimum detectable effects)."
