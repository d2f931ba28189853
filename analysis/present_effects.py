"""Report sections read straight off the trials: level comparisons, the paper's view, ratio
rules, power by seed count, and Optuna's PED-ANOVA cross-check."""

from __future__ import annotations

import numpy as np

from analysis.blocks import Block, heading, p_text, paragraph, pct, pts, table
from analysis.estimable import NotEstimable
from analysis.report import Report

__all__ = ["comparison_blocks", "paper_blocks", "power_blocks", "ped_blocks", "ratio_blocks"]

DIFF_COLUMNS = ("difference", "diff_lo", "diff_hi")


def _unsigned(value) -> str:
    """A size (a minimum detectable effect), in points, without a sign."""
    return "" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def ped_blocks(report: Report) -> list[Block]:
    ped = report.importance
    if ped is None:
        return []
    dec = report.primary.decomposition
    share = {}
    if not isinstance(dec, NotEstimable):
        for name, value in zip(dec.factors, dec.shares, strict=True):
            share[name.split("+")[0]] = value
    frame = ped.assign(
        importance=ped["importance"].map(lambda v: f"{100 * v:.1f}%"),
        shapley_share=ped["factor"].map(lambda f: pct(share.get(f, np.nan))),
    )
    return [
        heading("Cross-check: Optuna PED-ANOVA importances"),
        paragraph(
            "PED-ANOVA (Optuna) measures how much each searched parameter matters for reaching "
            "the top 10% of trials; compare its ranking with the variance shares (%).",
        ),
        table(frame[["study", "param", "factor", "importance", "shapley_share"]]),
    ]


def comparison_blocks(report: Report, what: str) -> list[Block]:
    out = [heading("Level comparisons (paired on the seed and the other factors)")]
    if isinstance(report.comparisons, NotEstimable):
        return [*out, paragraph(f"Not available: {report.comparisons.reason}.")]
    out.append(
        paragraph(
            f"Mean {what} of each level minus its baseline, in accuracy points, with a 95% "
            "interval. Paired: trials matched on the seed (the dense model) and every other "
            "factor, a t interval over the matched pairs; Welch (unpaired) only where fewer "
            "than two pairs match, as the comparison column says. The intervals are "
            "per-comparison (95% each, so with many rows some exclude 0 by chance); p_holm is "
            "Holm-adjusted within each factor's comparisons, and a difference is "
            "distinguishable from noise, at a family-wise error of at most 5% per factor, only "
            "where p_holm < 0.05."
        )
    )
    fmt = {**dict.fromkeys(DIFF_COLUMNS, pts), "p_value": p_text, "p_holm": p_text}
    return [*out, table(report.comparisons, fmt)]


def paper_blocks(report: Report) -> list[Block]:
    out = [heading("Spread across criteria vs across fine-tuning methods")]
    if isinstance(report.paper, NotEstimable):
        return [*out, paragraph(f"Not available: {report.paper.reason}.")]
    fmt = {"spread": pct, "sd": pct}
    return [
        *out,
        paragraph(report.paper.summary + " Spreads and SDs in accuracy points."),
        table(report.paper.table, fmt),
    ]


def ratio_blocks(report: Report, what: str) -> list[Block]:
    out = [heading("Ratio rules (MRS, global vs uniform) at an equal budget")]
    if isinstance(report.ratio, NotEstimable):
        return [*out, paragraph(f"Not available: {report.ratio.reason}.")]
    pct_cols = [
        "uniform",
        "rule_mean",
        "achieved_uniform",
        "achieved_rule",
        "params_removed_rule",
        "macs_removed_rule",
    ]
    fmt = {
        **dict.fromkeys(pct_cols, pct),
        **dict.fromkeys(DIFF_COLUMNS, pts),
        "p_value": p_text,
        "p_holm": p_text,
    }
    return [
        *out,
        paragraph(
            f"Mean {what} (%) of each ratio rule (rule_mean) and of uniform allocation at "
            "each target sparsity; difference = rule - uniform in accuracy points with a 95% "
            "interval, paired within seed blocks and matched on the other factors where the "
            "design allows (the comparison column says which). `budget` says what was equal: "
            "the fraction of prunable parameters (params) or of prunable multiply-accumulates "
            "(macs) removed; achieved_* (%) is that fraction, checking that the budgets "
            "matched, and params/macs_removed_rule (%) show both for the rule. Intervals are "
            "per-comparison (95% each); p_holm is Holm-adjusted over the table's rows "
            "(family-wise error at most 5%).",
        ),
        table(report.ratio, fmt),
    ]


def power_blocks(report: Report) -> list[Block]:
    if report.power is None:
        return []
    frame = report.power
    fmt = {c: _unsigned for c in frame.columns if c not in ("seeds", "trials", "residual_df")}
    fmt["current"] = lambda v: "this design" if v else ""
    return [
        heading("Power: minimum detectable effect by number of seeds"),
        paragraph(
            "The smallest difference between two levels of each factor (accuracy points) that "
            "its F-test (α = 0.05 over the factors, Holm's first step) would find 80% of the "
            "time, for the measured within-block noise and this design repeated with more or "
            "fewer seeds."
        ),
        table(frame, fmt),
    ]
