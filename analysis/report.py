"""Assemble the whole analysis of one or many experiments (no file output here).

The response (robust accuracy by default) gets the full treatment; clean accuracy gets its own
decomposition beside it. Everything that could not be estimated is collected in `skipped`
with its reason, so the report states it instead of failing; so are the columns the tables
did not have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures, tables
from analysis.bootstrap import DEFAULT_RESAMPLES
from analysis.design import Design, build_design
from analysis.effects import PaperView, SeedNoise, paper_view, ratio_rule_effect, seed_noise
from analysis.estimable import NotEstimable
from analysis.finalists import finalists_frame
from analysis.formatting import response_label
from analysis.importance import ped_anova
from analysis.load import ResultSet, check_response, load_results, usable_for
from analysis.shares import Decomposition, decompose
from analysis.verdict import Verdict, verdict
from robprune.config.factors import FACTOR_COLUMNS
from robprune.errors import BadInput

__all__ = ["Report", "ResponseAnalysis", "analyse_response", "build_report"]

SECONDARY = "clean_acc"


@dataclass(frozen=True, kw_only=True)
class ResponseAnalysis:
    """Decomposition, noise floor and verdict for one response."""

    response: str
    trials: pd.DataFrame  # completed trials with a finite response
    missing: int  # completed trials whose response is null or not finite
    design: Design
    decomposition: Decomposition | NotEstimable
    noise: SeedNoise | None
    verdict: Verdict


@dataclass(frozen=True, kw_only=True)
class Report:
    results: ResultSet
    primary: ResponseAnalysis
    secondary: ResponseAnalysis | None
    paper: PaperView | NotEstimable
    ratio: pd.DataFrame | NotEstimable
    figures: list[figures.Figure | figures.Skipped]
    tables: dict[str, pd.DataFrame]  # CSV name -> table
    importance: pd.DataFrame | None
    skipped: list[str] = field(default_factory=list)  # what could not be estimated, and why
    notes: list[str] = field(default_factory=list)


def analyse_response(
    ok: pd.DataFrame,
    response: str,
    resamples: int,
    rng: np.random.Generator,
    design: Design | None = None,
    unrecorded: tuple[str, ...] = (),
) -> ResponseAnalysis | NotEstimable:
    """Everything about one response, or why nothing can be said about it.

    `design` may be passed when it was built from exactly the same trials (another response
    with no missing values), to avoid coding the factors twice.
    """
    trials, missing = usable_for(ok, response)
    if trials.empty:
        return NotEstimable(
            f"{response} is missing or not a finite number in all {len(ok)} completed trials"
        )
    if design is None or missing:
        design = build_design(trials, unrecorded)
    y = trials[response].to_numpy(dtype=float)
    dec = decompose(y, design, response, resamples, rng)
    noise = seed_noise(trials, response)
    return ResponseAnalysis(
        response=response,
        trials=trials,
        missing=missing,
        design=design,
        decomposition=dec,
        noise=noise,
        verdict=verdict(dec, design, noise, response),
    )


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


def build_report(
    paths: list[str | Path],
    response: str = "robust_acc",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Report:
    """Load, check, analyse: raises `BadInput` when there is nothing to analyse."""
    check_response(response)
    results = load_results(paths, response)
    unrecorded = tuple(c for c in FACTOR_COLUMNS if not results.recorded(c))
    rng = np.random.default_rng(seed)
    primary = analyse_response(results.ok, response, resamples, rng, unrecorded=unrecorded)
    if isinstance(primary, NotEstimable):
        raise BadInput(primary.reason)
    skipped: list[str] = []
    absent = absent_columns(results)
    if absent:
        skipped.append(absent)
    notes = list(results.notes) + list(primary.design.notes)
    secondary = None
    if response != SECONDARY and not results.recorded(SECONDARY):
        skipped.append(f"Clean-accuracy decomposition: the trials table has no {SECONDARY}.")
    elif response != SECONDARY:
        same = primary.design if primary.missing == 0 else None
        second = analyse_response(results.ok, SECONDARY, resamples, rng, same, unrecorded)
        if isinstance(second, NotEstimable):
            skipped.append(f"Clean-accuracy decomposition: {second.reason}.")
        else:
            secondary = second
    decompositions = []
    for analysis in (primary, secondary):
        if analysis is None:
            continue
        what = response_label(analysis.response)
        if isinstance(analysis.decomposition, NotEstimable):
            skipped.append(f"Variance decomposition of {what}: {analysis.decomposition.reason}.")
        else:
            decompositions.append(analysis.decomposition)
            notes += [f"{what}: {n}" for n in analysis.decomposition.notes]
        if analysis.missing:
            skipped.append(
                f"{analysis.missing} completed trials have no finite {what} (null or NaN) and "
                f"were left out of its analysis."
            )
    if primary.noise is None:
        skipped.append(
            "Seed noise floor: no configuration was run with more than one seed; the model's "
            "residual stands in for it."
        )
    trials = primary.trials
    paper = paper_view(trials, response)
    if isinstance(paper, NotEstimable):
        skipped.append(f"Spread across criteria vs across fine-tuning methods: {paper.reason}.")
    ratio = ratio_rule_effect(trials, response)
    if isinstance(ratio, NotEstimable):
        skipped.append(f"Ratio rule at equal sparsity: {ratio.reason}.")

    figs = [
        figures.sparsity_curves(trials, response),
        figures.share_bars(decompositions, {f.name: f.title for f in primary.design.factors}),
        figures.pareto_front(results.ok),
        figures.layer_profile(trials, results.layers, response),
        figures.learning_curves(trials, results.epochs, response),
    ]
    skipped += [f"Figure '{f.title}': {f.reason}." for f in figs if isinstance(f, figures.Skipped)]

    importance = None
    found = ped_anova(results.sources, response)
    if found is not None:
        importance, importance_notes = found
        skipped += [f"PED-ANOVA: {n}" for n in importance_notes]
        if importance.empty:
            importance = None

    out_tables: dict[str, pd.DataFrame] = {
        "factors": tables.factor_summary(primary.design, primary.decomposition),
        "factor_levels": tables.factor_levels(trials, primary.design, response),
        "best_configs": tables.best_configs(trials, primary.design, response),
        "excluded": tables.exclusions(results, response, primary.missing),
    }
    for dec in decompositions:
        out_tables[f"{dec.method}_{dec.response}"] = dec.full_table
    if isinstance(paper, PaperView):
        out_tables["paper_view"] = paper.table
    if not isinstance(ratio, NotEstimable):
        out_tables["ratio_rule"] = ratio
    if importance is not None:
        out_tables["ped_anova"] = importance
    finalists = finalists_frame(results.trials)
    if not isinstance(finalists, str):
        out_tables["finalists"] = finalists
    return Report(
        results=results,
        primary=primary,
        secondary=secondary,
        paper=paper,
        ratio=ratio,
        figures=figs,
        tables=out_tables,
        importance=importance,
        skipped=skipped,
        notes=notes,
    )
