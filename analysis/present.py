"""The report's content as an ordered list of blocks, shared by the HTML and Markdown writers.

Numbers are formatted here once (shares and accuracies in percent), so both outputs say the
same thing; the CSV files keep the raw values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.estimable import NotEstimable
from analysis.figures import Figure, Skipped
from analysis.finalists import (
    FINALIST_FACTORS,
    FINALISTS_INTRO,
    finalists_frame,
    flag_lines,
    flag_summary,
)
from analysis.formatting import fmt_share, response_label
from analysis.provenance import describe_attacks
from analysis.report import Report, ResponseAnalysis

__all__ = ["Block", "blocks"]


@dataclass(frozen=True, kw_only=True)
class Block:
    """kind: heading | paragraph | verdict | table | figure | list."""

    kind: str
    text: str = ""
    headers: list[str] | None = None
    rows: list[list[str]] | None = None
    figure: Figure | None = None
    items: list[str] | None = None


def _heading(text: str) -> Block:
    return Block(kind="heading", text=text)


def _paragraph(text: str) -> Block:
    return Block(kind="paragraph", text=text)


def _pct(value) -> str:
    return "" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def _p(value) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return "< 1e-10" if value < 1e-10 else f"{value:.2g}"


def _cell(value) -> str:
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def _table(frame: pd.DataFrame, formats: dict | None = None) -> Block:
    formats = formats or {}
    rows = [
        [formats.get(col, _cell)(row[col]) for col in frame.columns] for _, row in frame.iterrows()
    ]
    return Block(kind="table", headers=[str(c) for c in frame.columns], rows=rows)


def _shares_table(analysis: ResponseAnalysis) -> Block:
    dec = analysis.decomposition
    titles = {f.name: f.title for f in analysis.design.factors}
    rows = []
    for _, term in dec.terms.iterrows():
        if term["kind"] == "interaction" and term["share_hi"] < 0.01:
            continue
        rows.append(
            [
                " × ".join(titles.get(p, p) for p in term["term"].split(" x ")),
                term["kind"],
                fmt_share(term["share"], term["share_lo"], term["share_hi"]),
                _p(term["p_value"]),
            ]
        )
    rows.append(["unexplained (noise)", "residual", fmt_share(*dec.noise), ""])
    return Block(
        kind="table", headers=["term", "kind", "share of variance [95% CI]", "p"], rows=rows
    )


def _method_paragraph(analysis: ResponseAnalysis) -> str:
    dec = analysis.decomposition
    design = analysis.design
    if dec.method == "anova":
        cells = "x".join(str(s) for s in design.shape)
        return (
            f"The {dec.n} completed trials form a balanced full factorial ({cells} cells, "
            f"{design.replicates} per cell), so a multi-way ANOVA (statsmodels, main effects "
            "and two-way interactions, higher ones pooled into the residual) decomposes the "
            f"variance. Shares are ω²; η² and partial η² are in the CSV. Intervals: "
            f"{dec.boot.shape[0]} bootstrap replicates, resampling {dec.resampling}; "
            "bias-corrected normal intervals on the arcsine-square-root scale."
        )
    full = int(np.prod(design.shape))
    why = (
        f"all {full} factor combinations occur, but with unequal counts (failed or missing trials)"
        if design.cells == full
        else f"{design.cells} of the {full} factor combinations occur"
    )
    return (
        f"The {dec.n} completed trials do not form a balanced grid ({why}), so the explained "
        "variance of an additive "
        "model is split over the factors by Shapley values (LMG: each factor's R² gain "
        f"averaged over all orders). Intervals: {dec.boot.shape[0]} bootstrap replicates, "
        f"{dec.resampling}; shares and their normal intervals are bias-corrected (raw shares "
        "in the CSV)."
    )


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
    text += "."
    attacks = describe_attacks([s.trials for s in res.sources])
    if attacks:
        text += (
            " Robust accuracy is accuracy on the test split under "
            f"{'; '.join(attacks)}; per-epoch curves use the validation subset."
        )
    return text


def _ped_block(report: Report) -> list[Block]:
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
        shapley_share=ped["factor"].map(lambda f: _pct(share.get(f, np.nan))),
    )
    return [
        _heading("Cross-check: Optuna PED-ANOVA importances"),
        _paragraph(
            "PED-ANOVA (Optuna) measures how much each searched parameter matters for reaching "
            "the top 10% of trials; compare its ranking with the variance shares (%).",
        ),
        _table(frame[["study", "param", "factor", "importance", "shapley_share"]]),
    ]


def blocks(report: Report) -> list[Block]:
    """Everything the report shows, in order."""
    primary = report.primary
    response = primary.response
    what = response_label(response)
    out = [
        _heading(f"Ablation report: what drives {what}?"),
        _paragraph(_summary(report)),
        Block(kind="verdict", text=primary.verdict.headline + ".", items=[primary.verdict.text]),
    ]
    if isinstance(report.paper, NotEstimable):
        paper = [_paragraph(f"Not available: {report.paper.reason}.")]
    else:
        fmt = {"spread": _pct, "sd": _pct}
        paper = [
            _paragraph(report.paper.summary + " Spreads and SDs in accuracy points."),
            _table(report.paper.table, fmt),
        ]
    out += [_heading("Spread across criteria vs across fine-tuning methods"), *paper]
    out.append(_heading("Ratio rules (MRS vs uniform) at equal sparsity"))
    if isinstance(report.ratio, NotEstimable):
        out.append(_paragraph(f"Not available: {report.ratio.reason}."))
    else:
        pct_cols = [
            "uniform",
            "rule_mean",
            "difference",
            "diff_lo",
            "diff_hi",
            "achieved_uniform",
            "achieved_rule",
        ]
        out.append(
            _paragraph(
                f"Mean {what} (%) of each ratio rule (rule_mean) and of uniform allocation at "
                "each target sparsity, all other factors pooled; difference = rule - uniform "
                "with a Welch 95% interval; achieved sparsity (%) checks that the budgets "
                "matched.",
            )
        )
        out.append(_table(report.ratio, dict.fromkeys(pct_cols, _pct)))

    out.append(_heading("Variance decomposition"))
    for analysis in (primary, report.secondary):
        if analysis is None:
            continue
        name = response_label(analysis.response)
        name = name[:1].upper() + name[1:]
        if isinstance(analysis.decomposition, NotEstimable):
            out.append(_paragraph(f"{name}: not estimated ({analysis.decomposition.reason})."))
            continue
        out.append(_paragraph(f"{name}: " + _method_paragraph(analysis)))
        out.append(_shares_table(analysis))
        if analysis is report.secondary:
            out.append(_paragraph(analysis.verdict.headline + ". " + analysis.verdict.text))
    shares_fig = [f for f in report.figures if f.name == "shares"]
    out += [_figure_block(f) for f in shares_fig]
    out += _ped_block(report)

    out.append(_heading("Figures"))
    out += [_figure_block(f) for f in report.figures if f.name != "shares"]

    out.append(_heading("Best configurations"))
    best = report.tables["best_configs"]
    acc = {
        c: _pct
        for c in best.columns
        if c.endswith("_acc") or c in ("achieved_sparsity", "flops_kept")
    }
    out.append(
        _paragraph(
            "Top trials by " + what + "; accuracies, achieved sparsity and kept FLOPs in %.",
        )
    )
    out.append(_table(best, acc))
    out += _finalists_blocks(report)
    out.append(_heading("Factors"))
    factors = report.tables["factors"]
    fmt = {"share": _pct, "share_lo": _pct, "share_hi": _pct, "noise_floor": _pct, "p_value": _p}
    out.append(
        _paragraph(
            f"Every factor column; shares of {what} variance in %; "
            "noise floor = the share noise alone would give the factor.",
        )
    )
    out.append(_table(factors, fmt))
    levels = report.tables["factor_levels"]
    out.append(_paragraph(f"Mean {what} and clean accuracy (%) at every level."))
    out.append(_table(levels, {c: _pct for c in levels.columns if "acc" in c}))

    out.append(_heading("What could not be estimated, and why"))
    out.append(Block(kind="list", items=report.skipped or ["Everything was estimated."]))
    out.append(_heading("Method notes"))
    out.append(Block(kind="list", items=report.notes or ["None."]))
    out.append(_heading("Data files"))
    files = [f"{name}.csv" for name in report.tables]
    files += [
        f"{f.name}.csv (numbers behind {f.name}.png)"
        for f in report.figures
        if isinstance(f, Figure)
    ]
    out.append(Block(kind="list", items=files))
    return out


def _finalists_blocks(report: Report) -> list[Block]:
    summary = flag_summary(report.results.ok)
    masking = [
        _heading("Gradient-masking flags"),
        _paragraph("Red flags raised by the final evaluations (completed trials):"),
        Block(kind="list", items=summary),
    ]
    frame = finalists_frame(report.results.trials)
    if isinstance(frame, str):
        return masking if summary else []  # no finalists stage ran
    acc = {
        c: _pct for c in frame.columns if c not in ("rank", "trial", "flags", *FINALIST_FACTORS)
    }
    flags = flag_lines(report.results.trials)
    return [
        _heading("Finalists"),
        _paragraph(FINALISTS_INTRO),
        _table(frame, acc),
        _paragraph("Gradient-masking flags on the finalists:"),
        Block(kind="list", items=flags or ["None raised."]),
        *(masking if summary else []),
    ]


def _figure_block(fig: Figure | Skipped) -> Block:
    if isinstance(fig, Skipped):
        return _paragraph(f"{fig.title}: not drawn ({fig.reason}).")
    return Block(kind="figure", text=fig.title, figure=fig)
