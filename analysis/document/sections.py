"""The report's sections, one function each: a part of the `Report` as blocks.

The decomposition tables, the cells behind an interaction, the level comparisons, the paper's
view, ratio rules, power by seed count, Optuna's PED-ANOVA cross-check and the finalists;
`analysis.document.layout` puts them in order.
"""

from __future__ import annotations

import numpy as np

from analysis.design.estimable import NotEstimable
from analysis.document.build import Report
from analysis.render.blocks import Block, heading, paragraph, table
from analysis.render.figures import Figure, Skipped
from analysis.render.finalists_table import (
    FINALIST_FACTORS,
    FINALISTS_INTRO,
    GAP_NOTE,
    IMAGE_COLUMNS,
    finalists_frame,
    flag_lines,
    flag_summary,
    reranked,
)
from analysis.verdict.response import SURVIVORS, ResponseAnalysis
from robprune.formatting import (
    fmt_share,
    p_text,
    pct,
    percent,
    pts,
    response_label,
    sentence,
    to_units_interval,
)

__all__ = [
    "cells_blocks",
    "comparison_blocks",
    "decomposition_blocks",
    "figure_block",
    "finalists_blocks",
    "paper_blocks",
    "ped_blocks",
    "power_blocks",
    "ratio_blocks",
]

DIFF_COLUMNS = ("difference", "diff_lo", "diff_hi")


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
        importance=ped["importance"].map(percent),
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
    sizes = [c for c in frame.columns if c not in ("seeds", "trials", "residual_df")]
    fmt = {c: (lambda v: pts(v, signed=False)) for c in sizes}
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


def _sharestable(analysis: ResponseAnalysis) -> Block:
    """Every term's share; the interactions below 1% are one line, so the lines add to 100%."""
    dec = analysis.decomposition
    titles = {f.name: f.title for f in analysis.design.factors}
    holm = dict(zip(dec.factors, dec.p_adjusted, strict=True))
    effects = {e.factor: e for e in analysis.verdict.effects}
    if dec.pair is not None:
        holm[dec.pair.term] = dec.pair.p_adjusted
    rows, small, small_count = [], 0.0, 0
    for _, term in dec.terms.iterrows():
        if term["kind"] == "interaction" and term["share_hi"] < 0.01 and term["term"] not in holm:
            small += float(term["share"])
            small_count += 1
            continue
        name = " × ".join(titles.get(p, p) for p in term["term"].split(" x "))
        if term["kind"] == "block":
            name = "dense-model variation (seed blocks)"
        effect = effects.get(term["term"])
        rows.append(
            [
                name,
                term["kind"],
                fmt_share(term["share"], term["share_lo"], term["share_hi"]),
                _effect_cell(effect, analysis.response),
                p_text(term["p_value"]),
                p_text(holm.get(term["term"], np.nan)),
            ]
        )
    if small_count:
        rows.append(
            [f"{small_count} other interactions (each below 1%)", "interaction", fmt_share(small)]
            + ["", "", ""]
        )
    rows.append(
        ["unexplained (the model's residual)", "residual", fmt_share(*dec.noise), "", "", ""]
    )
    headers = [
        "term",
        "kind",
        "share of variance [95% CI]",
        "effect: best minus worst level [95% CI]",
        "p (F-test)",
        "p (Holm)",
    ]
    return Block(kind="table", headers=headers, rows=rows)


def _effect_cell(effect, response: str) -> str:
    """A factor's best-minus-worst marginal-mean difference with its Tukey interval."""
    if effect is None or not np.isfinite(effect.size):
        return ""
    return to_units_interval(response, effect.size, effect.lo, effect.hi)


def _methodparagraph(analysis: ResponseAnalysis) -> str:
    dec = analysis.decomposition
    design = analysis.design
    block = (
        " The seed enters as a block (main effect only), so the F-tests are on the "
        "within-block residual."
        if dec.block is not None
        else f" No seed block: {design.block_reason or 'the seed blocks could not be fitted'}."
    )
    pair = (
        f" The criterion × fine-tuning method interaction is tested by the F-test from the "
        f"{dec.pair.source}."
        if dec.pair is not None
        else ""
    )
    tests = (
        " A factor is distinguishable from noise when its F-test, Holm-adjusted over the "
        "factors and that interaction, is below 0.05; the shares and intervals describe size "
        "only; the lines of the table add to 100% (negative estimates shown as 0, the "
        "unexplained share is what the displayed ones leave)."
    )
    if dec.method == "anova":
        cells = "x".join(str(s) for s in design.shape)
        return (
            f"The {dec.n} trials form a balanced full factorial ({cells} cells, "
            f"equal counts), so a multi-way ANOVA (statsmodels; {dec.model}) decomposes the "
            f"variance.{block}{pair}{tests} Shares are ω²; η² and partial η² are in the CSV. "
            f"Intervals: {dec.boot.shape[0]} bootstrap replicates, resampling "
            f"{dec.resampling}; bias-corrected normal intervals on the arcsine-square-root scale."
        )
    full = int(np.prod(design.shape))
    left_out = analysis.missing + analysis.unseeded
    why = (
        f"all {full} factor combinations occur, but with unequal counts"
        if design.cells == full
        else f"{design.cells} of the {full} factor combinations occur"
    )
    if analysis.scope == SURVIVORS and analysis.missing:
        why += f"; the {analysis.missing} trials stopped early have no test metrics"
        left_out -= analysis.missing
    if left_out:
        why += f"; {left_out} completed trials were left out, as listed below"
    return (
        f"The {dec.n} trials do not form a balanced grid ({why}), so Shapley values (LMG: "
        "each factor's R² gain averaged over all orders) split the explained variance of the "
        f"model fitted, {dec.model}.{block}{pair}{tests} Intervals: "
        f"{dec.boot.shape[0]} bootstrap replicates, {dec.resampling}; shares and their normal "
        "intervals are bias-corrected (raw shares in the CSV)."
    )


def decomposition_blocks(report: Report) -> list[Block]:
    out = [heading("Variance decomposition")]
    for analysis in (report.primary, report.survivors, report.secondary):
        if analysis is None:
            continue
        name = sentence(response_label(analysis.response))
        if analysis.scope:
            name += f" ({analysis.scope})"
        if isinstance(analysis.decomposition, NotEstimable):
            out.append(paragraph(f"{name}: not estimated ({analysis.decomposition.reason})."))
            continue
        out.append(paragraph(f"{name}: " + _methodparagraph(analysis)))
        out.append(_sharestable(analysis))
        if analysis is not report.primary:
            out.append(paragraph(analysis.verdict.headline + ". " + analysis.verdict.text))
    out += [figure_block(f) for f in report.figures if f.name == "shares"]
    return out


def finalists_blocks(report: Report) -> list[Block]:
    summary = flag_summary(report.results.ok)
    masking = [
        heading("Gradient-masking flags"),
        paragraph("Red flags raised by the final evaluations (completed trials):"),
        Block(kind="list", items=summary),
    ]
    frame = finalists_frame(report.results.trials)
    if isinstance(frame, str):
        return masking if summary else []  # no finalists stage ran
    plain = ("rank", "trial", "flags", *FINALIST_FACTORS, *IMAGE_COLUMNS)
    acc = {c: pct for c in frame.columns if c not in plain}
    flags = flag_lines(report.results.trials)
    moved = reranked(report.results.trials)
    rerank = (
        f"Ranked by AutoAttack instead of the primary attack, {moved[0]} of {moved[1]} "
        "finalists change rank."
        if moved is not None
        else "No finalist has both a primary-attack and an AutoAttack accuracy to re-rank by."
    )
    return [
        heading("Finalists"),
        paragraph(FINALISTS_INTRO),
        table(frame, acc),
        paragraph(GAP_NOTE + " " + rerank),
        paragraph("Gradient-masking flags on the finalists:"),
        Block(kind="list", items=flags or ["None raised."]),
        *(masking if summary else []),
    ]


def cells_blocks(analysis: ResponseAnalysis) -> list[Block]:
    """The cell means that make an interaction visible, when the headline reports one."""
    cells = analysis.verdict.cells
    if cells is None or not analysis.verdict.interaction:
        return []
    what = response_label(analysis.response)
    unit = " (%)" if analysis.response.endswith("_acc") else ""
    return [
        paragraph(
            f"Estimated marginal mean {what}{unit} of each fine-tuning method (rows) and "
            "criterion (columns), averaged over the other factors' levels (the additive model "
            "plus their interaction); empty where the cell was not run."
        ),
        table(
            cells,
            {c: pct for c in cells.columns if c != "fine-tuning method"}
            if analysis.response.endswith("_acc")
            else None,
        ),
    ]


def figure_block(fig: Figure | Skipped) -> Block:
    if isinstance(fig, Skipped):
        return paragraph(f"{fig.title}: not drawn ({fig.reason}).")
    return Block(kind="figure", text=fig.title, figure=fig)
