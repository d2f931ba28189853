"""Assemble the whole analysis of one or many experiments (no file output here).

The response (robust accuracy by default) gets the full treatment; clean accuracy gets its own
decomposition beside it. When trials were stopped early the headline is the validation metric
at the last epoch all trials reached, and the test-split decomposition of the survivors is a
secondary table (`analysis.design.adaptive`). Everything that could not be estimated is
collected in `skipped` with its reason, so the report states it instead of failing; so are
the columns the tables did not have. Each response's analysis: `analysis.verdict.response`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.design.adaptive import Adaptive, adaptive_design
from analysis.design.estimable import NotEstimable
from analysis.design.identical import drop_identical_levels
from analysis.design.question import QUESTION
from analysis.read.load import ResultSet, check_response, load_results
from analysis.render import figures, tables, trial_figures
from analysis.render.curves import security_curves
from analysis.render.finalists_table import finalists_frame
from analysis.stats.bootstrap import DEFAULT_RESAMPLES
from analysis.stats.effects import PaperView, level_comparisons, paper_view, ratio_rule_effect
from analysis.stats.importance import ped_anova
from analysis.stats.power import power_table
from analysis.stats.rank_agreement import PRIMARY, agreement_lines, choose_response
from analysis.stats.shares import Decomposition
from analysis.verdict.paragraph import question_power, tested_alpha
from analysis.verdict.response import SURVIVORS, ResponseAnalysis, analyse_response
from robprune.config.factors import FACTOR_COLUMNS
from robprune.errors import BadInput
from robprune.formatting import response_label

__all__ = ["Report", "build_report"]

SECONDARY = "clean_acc"


@dataclass(frozen=True, kw_only=True)
class Report:
    """Everything the report shows, computed once: the layout and the writers only format it."""

    results: ResultSet
    primary: ResponseAnalysis
    secondary: ResponseAnalysis | None
    survivors: ResponseAnalysis | None  # test split of the survivors, when trials were stopped
    adaptive: Adaptive
    paper: PaperView | NotEstimable
    ratio: pd.DataFrame | NotEstimable
    comparisons: pd.DataFrame | NotEstimable
    power: pd.DataFrame | None  # minimum detectable effects for several seed counts
    figures: list[figures.Figure | figures.Skipped]
    tables: dict[str, pd.DataFrame]  # CSV name -> table
    importance: pd.DataFrame | None
    skipped: list[str] = field(default_factory=list)  # what could not be estimated, and why
    notes: list[str] = field(default_factory=list)
    agreement: list[str] = field(default_factory=list)  # analysis.stats.rank_agreement's sentences


def absent_columns(results: ResultSet) -> str | None:
    """The trials-table columns some source lacked, in one sentence; None when none did."""
    if not results.absent:
        return None
    total = len(results.sources)
    names = [
        name if count == total else f"{name} (in {count} of {total} sources)"
        for name, count in results.absent.items()
    ]
    return (
        "Columns absent from the trials table, read as not recorded (their numbers are not "
        "reported): " + ", ".join(names) + "."
    )


@dataclass(kw_only=True)
class _Analyses:
    primary: ResponseAnalysis
    secondary: ResponseAnalysis | None = None
    survivors: ResponseAnalysis | None = None
    skipped: list[str] = field(default_factory=list)


def _analyses(
    results: ResultSet,
    response: str,
    adaptive: Adaptive,
    resamples: int,
    rng: np.random.Generator,
) -> _Analyses:
    """The headline analysis, the survivors' one when trials were stopped, clean accuracy."""
    unrecorded = tuple(c for c in FACTOR_COLUMNS if not results.recorded(c))
    survivors = None
    skipped: list[str] = []
    if adaptive.trials is not None and adaptive.response is not None:
        primary = analyse_response(
            adaptive.trials, adaptive.response, resamples, rng, unrecorded=unrecorded
        )
        second = analyse_response(
            results.ok, response, resamples, rng, unrecorded=unrecorded, scope=SURVIVORS
        )
        if isinstance(second, NotEstimable):
            skipped.append(f"Test-split decomposition of the {SURVIVORS}: {second.reason}.")
        else:
            survivors = second
    else:
        primary = analyse_response(results.ok, response, resamples, rng, unrecorded=unrecorded)
    if isinstance(primary, NotEstimable):
        raise BadInput(primary.reason)
    out = _Analyses(primary=primary, survivors=survivors, skipped=skipped)
    if response == SECONDARY:
        return out
    if not results.recorded(SECONDARY):
        skipped.append(f"Clean-accuracy decomposition: the trials table has no {SECONDARY}.")
        return out
    scope = SURVIVORS if adaptive.stopped else ""
    same = primary.design if primary.missing == 0 and not adaptive.stopped else None
    second = analyse_response(results.ok, SECONDARY, resamples, rng, same, unrecorded, scope)
    if isinstance(second, NotEstimable):
        skipped.append(f"Clean-accuracy decomposition: {second.reason}.")
    else:
        out.secondary = second
    return out


def _decomposition_lines(found: _Analyses) -> tuple[list[Decomposition], list[str], list[str]]:
    """Decompositions to draw, and the skipped lines and notes each analysis adds."""
    decompositions, skipped, notes = [], [], []
    for analysis in (found.primary, found.survivors, found.secondary):
        if analysis is None:
            continue
        what = response_label(analysis.response)
        if analysis.scope:
            what += f" ({analysis.scope})"
        if isinstance(analysis.decomposition, NotEstimable):
            skipped.append(f"Variance decomposition of {what}: {analysis.decomposition.reason}.")
        else:
            decompositions.append(analysis.decomposition)
            notes += [f"{what}: {n}" for n in analysis.decomposition.notes]
        if analysis.missing and analysis is not found.survivors:
            skipped.append(
                f"{analysis.missing} completed trials have no finite {what} (null or NaN) and "
                f"were left out of its analysis."
            )
        if analysis.unseeded:
            skipped.append(
                f"{analysis.unseeded} trials record no seed, so their dense model cannot be "
                f"matched: they were left out of the analysis of {what}, so that the other "
                "trials keep their seed blocks."
            )
    return decompositions, skipped, notes


def _adaptive_lines(adaptive: Adaptive, response: str) -> list[str]:
    if adaptive.stopped and adaptive.response is None:
        return [
            f"Headline on a response every trial has: {adaptive.reason}; the decomposition "
            f"below is of the {SURVIVORS} only."
        ]
    if adaptive.lacking and adaptive.response is not None:
        return [
            f"{adaptive.lacking} completed trials have no {response_label(adaptive.response)} "
            "(no per-epoch record at that epoch and no validation value, e.g. trials that were "
            "not fine-tuned): they were left out of the headline analysis; a level they alone "
            "held is missing from it."
        ]
    return []


def _figures(report_trials: pd.DataFrame, response: str, results: ResultSet, found, decs):
    titles = {f.name: f.title for f in found.primary.design.factors}
    if found.primary.design.block is not None:
        titles["seed"] = found.primary.design.block.title
    return [
        figures.sparsity_curves(report_trials, response),
        figures.share_bars(decs, titles),
        figures.pareto_front(results.ok),
        trial_figures.layer_profile(report_trials, results.layers, response),
        trial_figures.learning_curves(report_trials, results.epochs, response),
        security_curves(results.trials),
    ]


def _power(primary: ResponseAnalysis) -> pd.DataFrame | None:
    dec = primary.decomposition
    if isinstance(dec, NotEstimable):
        return None
    design = primary.design
    factors = question_power(dec, design)
    if not factors:
        return None
    seeds = len(design.block.levels) if design.block is not None else 1
    return power_table(factors, dec.noise_var, dec.df_res, dec.n, seeds, tested_alpha(dec))


def _tables(found: _Analyses, results: ResultSet, decs: list[Decomposition], extra: dict):
    primary = found.primary
    best_from = found.survivors or primary
    out: dict[str, pd.DataFrame] = {
        "factors": tables.factor_summary(
            primary.design, primary.decomposition, primary.verdict.effects
        ),
        "factor_levels": tables.factor_levels(
            primary.trials, primary.design, primary.response, primary.verdict.effects
        ),
        "best_configs": tables.best_configs(
            best_from.trials, best_from.design, best_from.response
        ),
        "excluded": tables.exclusions(
            results, primary.response, primary.missing, primary.unseeded
        ),
    }
    for dec in decs:
        out[f"{dec.method}_{dec.response}"] = dec.full_table
    for name, value in extra.items():
        if isinstance(value, pd.DataFrame):
            out[name] = value
    finalists = finalists_frame(results.trials)
    if not isinstance(finalists, str):
        out["finalists"] = finalists
    return out


def _effects(trials: pd.DataFrame, what: str, skipped: list[str], cells=None):
    """The paper's view, ratio rules against uniform and level comparisons (or why not)."""
    paper = paper_view(trials, what, cells)
    if isinstance(paper, NotEstimable):
        skipped.append(f"Spread across criteria vs across fine-tuning methods: {paper.reason}.")
    ratio = ratio_rule_effect(trials, what)
    if isinstance(ratio, NotEstimable):
        skipped.append(f"Ratio rule at equal sparsity: {ratio.reason}.")
    comparisons = level_comparisons(trials, what, QUESTION)
    if isinstance(comparisons, NotEstimable):
        skipped.append(f"Level comparisons: {comparisons.reason}.")
    return paper, ratio, comparisons


def build_report(
    paths: list[str | Path],
    response: str | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    power: bool = False,
    draw: bool = True,
) -> Report:
    """Load, check, analyse: raises `BadInput` when there is nothing to analyse.

    `draw=False` leaves the figures out (simulations and column-by-column tests). `response`
    None: `strong_acc` when every completed trial has it, else `robust_acc`
    (`analysis.stats.rank_agreement.choose_response`).
    """
    check_response(response or PRIMARY)
    results = load_results(paths, response or PRIMARY)
    response, why = choose_response(results.ok, response)
    agreement = agreement_lines(results.ok, response, why)
    results.ok, identical = drop_identical_levels(results.ok)
    adaptive = adaptive_design(results, response)
    found = _analyses(results, response, adaptive, resamples, np.random.default_rng(seed))
    primary = found.primary
    decs, skipped, dec_notes = _decomposition_lines(found)
    absent = absent_columns(results)
    skipped = ([absent] if absent else []) + found.skipped + skipped
    notes = list(results.notes) + identical + list(primary.design.notes) + dec_notes
    trials, what = primary.trials, primary.response
    paper, ratio, comparisons = _effects(trials, what, skipped, primary.verdict.cells)
    figs = _figures(trials, what, results, found, decs) if draw else []
    skipped += [f"Figure '{f.title}': {f.reason}." for f in figs if isinstance(f, figures.Skipped)]
    importance = None
    found_ped = ped_anova(results.sources, response)
    if found_ped is not None:
        importance, importance_notes = found_ped
        skipped += [f"PED-ANOVA: {n}" for n in importance_notes]
        importance = None if importance.empty else importance
    power_frame = _power(primary) if power else None
    extra = {
        "paper_view": paper.table if isinstance(paper, PaperView) else None,
        "ratio_rule": ratio,
        "level_comparisons": comparisons,
        "ped_anova": importance,
        "power": power_frame,
    }
    return Report(
        results=results,
        primary=primary,
        secondary=found.secondary,
        survivors=found.survivors,
        adaptive=adaptive,
        tables=_tables(found, results, decs, extra),
        paper=paper,
        ratio=ratio,
        comparisons=comparisons,
        power=power_frame,
        figures=figs,
        skipped=[*skipped, *_adaptive_lines(adaptive, response)],
        importance=importance,
        notes=notes,
        agreement=agreement,
    )
