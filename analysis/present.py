"""The report's content as an ordered list of blocks, shared by the HTML and Markdown writers.

Numbers are formatted here once (shares and accuracies in percent), so both outputs say the
same thing; the CSV files keep the raw values.
"""

from __future__ import annotations

import numpy as np

from analysis.blocks import Block, heading, p_text, paragraph, pct, table
from analysis.estimable import NotEstimable
from analysis.figures import Figure, Skipped
from analysis.finalists_table import (
    FINALIST_FACTORS,
    FINALISTS_INTRO,
    GAP_NOTE,
    IMAGE_COLUMNS,
    finalists_frame,
    flag_lines,
    flag_summary,
    reranked,
)
from analysis.formatting import fmt_share, response_label, sentence, to_units_interval
from analysis.present_effects import (
    comparison_blocks,
    paper_blocks,
    ped_blocks,
    power_blocks,
    ratio_blocks,
)
from analysis.provenance import describe_attacks
from analysis.report import SURVIVORS, Report, ResponseAnalysis

__all__ = ["Block", "blocks", "report_response"]


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


def _adaptive_sentence(report: Report) -> str:
    adaptive = report.adaptive
    text = ""
    if adaptive.stopped:
        text += (
            f" Adaptive design: {adaptive.stopped} of the {len(report.results.ok)} completed "
            "trials were stopped early by the scheduler on their validation metric and have no "
            "test metrics."
        )
        if adaptive.response is not None:
            ok = len(report.results.ok)
            reached = (
                "which every completed trial reached"
                if not adaptive.lacking
                else f"which {ok - adaptive.lacking} of the {ok} completed trials have; the "
                f"other {adaptive.lacking} have neither a per-epoch record at that epoch nor a "
                "validation value and are left out of it"
            )
            text += (
                f" The headline analysis therefore uses {response_label(adaptive.response)}, "
                f"{reached}; the test-split decomposition of the trials that were not stopped "
                f"is a secondary table marked '{SURVIVORS}'."
            )
        else:
            text += f" Only the {SURVIVORS} are analysed ({adaptive.reason})."
    if adaptive.samplers:
        text += (
            f" The search sampled adaptively ({', '.join(adaptive.samplers)}): configurations "
            "that did well were sampled more often, so which trials exist depends on their "
            "results; the shares describe these trials, not a planned grid."
        )
    return text


def _summary(report: Report) -> str:
    res = report.results
    total = len(res.trials)
    ok = len(res.ok)
    text = (
        f"{total} trials from {len(res.sources)} source(s) "
        f"({', '.join(str(s.trials) for s in res.sources[:4])}"
        f"{' ...' if len(res.sources) > 4 else ''}); {ok} completed"
    )
    if res.excluded:
        text += "; excluded: " + ", ".join(f"{v} {k}" for k, v in res.excluded.items())
    text += "." + _adaptive_sentence(report)
    attacks = describe_attacks([s.trials for s in res.sources])
    if attacks:
        text += (
            " Robust accuracy (robust_acc) is accuracy on the test split under "
            f"{'; '.join(attacks)}; per-epoch curves use the validation subset."
        )
    return text + _strong_sentence(report)


def _strong_sentence(report: Report) -> str:
    """Which attacks the analysed response used, when it is the strong response."""
    if report_response(report) != "strong_acc":
        return ""
    ok = report.results.ok
    column = ok["strong_label"].dropna() if "strong_label" in ok else []
    labels = sorted({str(v) for v in column})
    suite = "; ".join(labels) if labels else "APGD-CE then APGD-T, worst case per image"
    return (
        " The response analysed below is the strong robust accuracy (strong_acc): " + suite + "."
    )


def _decomposition_blocks(report: Report) -> list[Block]:
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
    out += [_figure_block(f) for f in report.figures if f.name == "shares"]
    return out


def _best_blocks(report: Report, what: str) -> list[Block]:
    best = report.tables["best_configs"]
    acc = {
        c: pct
        for c in best.columns
        if c.endswith("_acc") or c in ("achieved_sparsity", "flops_kept")
    }
    return [
        heading("Best configurations"),
        paragraph(f"Top trials by {what}; accuracies, achieved sparsity and kept FLOPs in %."),
        table(best, acc),
    ]


def _factor_blocks(report: Report, what: str) -> list[Block]:
    factors = report.tables["factors"]
    fmt = {"share": pct, "share_lo": pct, "share_hi": pct, "p_value": p_text, "p_holm": p_text}
    if report.primary.response.endswith("_acc"):
        fmt.update(effect=pct, effect_lo=pct, effect_hi=pct)
    levels = report.tables["factor_levels"]
    return [
        heading("Factors"),
        paragraph(
            f"Every factor column (and the seed blocks); shares of {what} variance in %; "
            "p_value: F-test on the model's residual; p_holm: Holm-adjusted over the factors "
            "and the criterion × fine-tuning method interaction (the headline's test); "
            "effect: best minus worst level of the estimated marginal means, in accuracy "
            "points, with its 95% Tukey interval (lower bound 0 where p_holm ≥ 0.05).",
        ),
        table(factors, fmt),
        paragraph(
            f"Every level's estimated marginal mean {what} (%), averaged over the other "
            "factors' levels (so missing or unequal cells do not bias it; the headline's "
            "effects are differences of these), beside the raw mean of its trials and their "
            "mean clean accuracy."
        ),
        table(levels, {c: pct for c in levels.columns if "acc" in c}),
    ]


def _closing_blocks(report: Report) -> list[Block]:
    files = [f"{name}.csv" for name in report.tables]
    files += [
        f"{f.name}.csv (numbers behind {f.name}.png)"
        for f in report.figures
        if isinstance(f, Figure)
    ]
    return [
        heading("What could not be estimated, and why"),
        Block(kind="list", items=report.skipped or ["Everything was estimated."]),
        heading("Method notes"),
        Block(kind="list", items=report.notes or ["None."]),
        heading("Data files"),
        Block(kind="list", items=files),
    ]


def blocks(report: Report) -> list[Block]:
    """Everything the report shows, in order."""
    primary = report.primary
    what = response_label(primary.response)
    verdict = primary.verdict
    return [
        heading(f"Ablation report: what drives {response_label(report_response(report))}?"),
        paragraph(_summary(report)),
        Block(kind="verdict", text=verdict.headline + ".", items=[verdict.text]),
        *_cells_blocks(primary),
        heading("Primary attack against the strong suite"),
        Block(kind="list", items=report.agreement),
        *comparison_blocks(report, what),
        *paper_blocks(report),
        *ratio_blocks(report, what),
        *_decomposition_blocks(report),
        *power_blocks(report),
        *ped_blocks(report),
        heading("Figures"),
        *(_figure_block(f) for f in report.figures if f.name != "shares"),
        *_best_blocks(report, response_label(report_response(report))),
        *_finalists_blocks(report),
        *_factor_blocks(report, what),
        *_closing_blocks(report),
    ]


def report_response(report: Report) -> str:
    """The response the user asked for (the test-split one, even when the headline differs)."""
    return report.survivors.response if report.survivors is not None else report.primary.response


def _finalists_blocks(report: Report) -> list[Block]:
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


def _cells_blocks(analysis: ResponseAnalysis) -> list[Block]:
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


def _figure_block(fig: Figure | Skipped) -> Block:
    if isinstance(fig, Skipped):
        return paragraph(f"{fig.title}: not drawn ({fig.reason}).")
    return Block(kind="figure", text=fig.title, figure=fig)
