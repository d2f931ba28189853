"""The report's content as an ordered list of blocks, shared by the HTML and Markdown writers.

Which sections, in which order (`analysis.document.sections` builds them), and the summary
paragraph at the top. Numbers are formatted by `robprune.formatting`, so both outputs say the
same thing; the CSV files keep the raw values.
"""

from __future__ import annotations

from analysis.document.build import Report
from analysis.document.sections import (
    cells_blocks,
    comparison_blocks,
    decomposition_blocks,
    figure_block,
    finalists_blocks,
    paper_blocks,
    ped_blocks,
    power_blocks,
    ratio_blocks,
)
from analysis.render.blocks import Block, heading, paragraph, table
from analysis.render.figures import Figure
from analysis.verdict.response import SURVIVORS
from robprune.formatting import p_text, pct, response_label

__all__ = ["blocks", "report_response"]


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
    if res.attacks:
        text += (
            " Robust accuracy (robust_acc) is accuracy on the test split under "
            f"{'; '.join(res.attacks)}; per-epoch curves use the validation subset."
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
        *cells_blocks(primary),
        heading("Primary attack against the strong suite"),
        Block(kind="list", items=report.agreement),
        *comparison_blocks(report, what),
        *paper_blocks(report),
        *ratio_blocks(report, what),
        *decomposition_blocks(report),
        *power_blocks(report),
        *ped_blocks(report),
        heading("Figures"),
        *(figure_block(f) for f in report.figures if f.name != "shares"),
        *_best_blocks(report, response_label(report_response(report))),
        *finalists_blocks(report),
        *_factor_blocks(report, what),
        *_closing_blocks(report),
    ]


def report_response(report: Report) -> str:
    """The response the user asked for (the test-split one, even when the headline differs)."""
    return report.survivors.response if report.survivors is not None else report.primary.response
