"""The report's figures: PNG bytes plus the exact numbers plotted (written as CSV beside them).

Each builder returns a `Figure`, or a `Skipped` saying why it could not be drawn, so the report
states the reason instead of failing. matplotlib's object API (no pyplot state, no GUI).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure as Canvas

from analysis.render.selection import selection_column
from analysis.stats.shares import Decomposition
from robprune.formatting import response_label

__all__ = [
    "Figure",
    "Skipped",
    "pareto_front",
    "pareto_mask",
    "share_bars",
    "sparsity_curves",
]

MAX_SCATTER = 20_000
DPI = 100


@dataclass(frozen=True, kw_only=True)
class Figure:
    name: str  # file stem: NAME.png and NAME.csv
    title: str
    caption: str
    png: bytes
    data: pd.DataFrame


@dataclass(frozen=True, kw_only=True)
class Skipped:
    name: str
    title: str
    reason: str


def budget_note(trials: pd.DataFrame) -> str:
    """Which budget the trials' sparsity targets were equal in (prune.budget)."""
    budgets = (
        set(trials["budget"].dropna().astype(str)) if "budget" in trials.columns else set()
    ) or {"params"}
    what = {"params": "prunable parameters", "macs": "prunable multiply-accumulates (MACs)"}
    if len(budgets) == 1:
        only = budgets.pop()
        return f"Sparsity targets are fractions of {what.get(only, only)} (budget: {only})."
    return (
        "Trials mix budgets (params and macs): compare rules only within one budget, as the "
        "ratio-rule table does."
    )


def flops_colour(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series | None, str | None]:
    """FLOPs as % of the dense model (or in millions where the dense count is absent)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = frame["flops"] / frame["flops_dense"] * 100
    if relative.notna().any():
        return relative, relative, "FLOPs (% of the dense model)"
    if frame["flops"].notna().any():
        return relative, frame["flops"] / 1e6, "FLOPs (millions)"
    return relative, None, None


def png_bytes(fig: Canvas) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def response_scale(response: str) -> tuple[float, str]:
    """Accuracies are plotted in percent."""
    if response.endswith("_acc"):
        return 100.0, f"{response_label(response)} (%)"
    return 1.0, response_label(response)


def sparsity_curves(trials: pd.DataFrame, response: str) -> Figure | Skipped:
    """Mean response against sparsity, one line per criterion, one panel per method."""
    title = f"{response_label(response).capitalize()} against sparsity"
    if trials["sparsity_target"].notna().sum() == 0:
        return Skipped(name="sparsity", title=title, reason="no trial records a target sparsity")
    frame = trials[["finetune_method", "criterion", "sparsity_target", response]].copy()
    frame[["finetune_method", "criterion"]] = frame[["finetune_method", "criterion"]].fillna("n/a")
    if frame["sparsity_target"].nunique() > 12:
        bins = pd.qcut(frame["sparsity_target"], q=8, duplicates="drop")
        frame["sparsity_target"] = frame.groupby(bins, observed=True)["sparsity_target"].transform(
            "mean"
        )
    grouped = frame.groupby(["finetune_method", "criterion", "sparsity_target"])[response]
    data = grouped.agg(n="size", mean="mean", sd="std").reset_index()
    half = 1.96 * data["sd"].fillna(0.0) / np.sqrt(data["n"])
    data["ci_lo"], data["ci_hi"] = data["mean"] - half, data["mean"] + half
    methods = sorted(data["finetune_method"].unique())
    criteria = sorted(data["criterion"].unique())
    cols = min(4, len(methods))
    rows = -(-len(methods) // cols)
    fig = Canvas(figsize=(4.2 * cols, 3.6 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False)
    factor, ylabel = response_scale(response)
    colours = matplotlib.colormaps["tab10"]
    for ax, method in zip(axes.ravel(), methods, strict=False):
        sub = data[data["finetune_method"] == method]
        for c, criterion in enumerate(criteria):
            line = sub[sub["criterion"] == criterion].sort_values("sparsity_target")
            if line.empty:
                continue
            x = line["sparsity_target"] * 100
            ax.plot(x, line["mean"] * factor, marker="o", color=colours(c % 10), label=criterion)
            ax.fill_between(
                x,
                line["ci_lo"] * factor,
                line["ci_hi"] * factor,
                color=colours(c % 10),
                alpha=0.15,
            )
        ax.set_title(f"fine-tuning: {method}")
        ax.set_xlabel("sparsity (% of prunable parameters removed)")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in axes.ravel()[len(methods) :]:
        ax.set_visible(False)
    axes.ravel()[0].legend(title="criterion", fontsize=8)
    fig.suptitle(title)
    caption = "Mean over trials (all other factors pooled) with 95% intervals of the mean."
    return Figure(name="sparsity", title=title, caption=caption, png=png_bytes(fig), data=data)


_KIND_COLOURS = dict(
    factor="tab:blue", interaction="tab:orange", residual="tab:gray", block="tab:green"
)
_SHARES_CAPTION = (
    "Blue: factors; orange: interactions; green: dense-model variation (seed blocks); "
    "grey: unexplained (within-block noise and the rest)."
)


def _share_terms(dec: Decomposition, titles: dict[str, str]) -> pd.DataFrame:
    """The terms drawn for one decomposition: factors, block, visible interactions, noise."""
    terms = dec.terms.copy()
    terms = terms[terms["kind"].isin(["factor", "block"]) | (terms["share_hi"] >= 0.01)]
    share, lo, hi = dec.noise
    unexplained = pd.DataFrame(
        [dict(term="unexplained (noise)", kind="residual", share=share, share_lo=lo, share_hi=hi)]
    )
    terms = pd.concat([terms, unexplained], ignore_index=True)
    terms["label"] = terms["term"].map(lambda t: _pretty(t, titles))
    terms.insert(0, "response", dec.response)
    terms.insert(1, "method", dec.method)
    return terms


def share_bars(
    decompositions: list[Decomposition], titles: dict[str, str] | None = None
) -> Figure | Skipped:
    """Variance shares with intervals, one panel per response."""
    title = "Variance explained by each factor"
    if not decompositions:
        return Skipped(
            name="shares", title=title, reason="no variance decomposition could be estimated"
        )
    frames = [_share_terms(dec, titles or {}) for dec in decompositions]
    data = pd.concat(frames, ignore_index=True)
    same = all(list(f["label"]) == list(frames[0]["label"]) for f in frames)
    fig = Canvas(
        figsize=(6.4 * len(decompositions), 0.45 * max(len(f) for f in frames) + 1.6),
        layout="constrained",
    )
    axes = fig.subplots(1, len(decompositions), squeeze=False, sharey=same)
    for ax, dec, terms in zip(axes[0], decompositions, frames, strict=True):
        terms = terms.iloc[::-1]
        colours = terms["kind"].map(_KIND_COLOURS)
        y = np.arange(len(terms))
        err = np.vstack([terms["share"] - terms["share_lo"], terms["share_hi"] - terms["share"]])
        ax.barh(
            y, terms["share"] * 100, xerr=np.clip(err, 0, None) * 100, color=colours, capsize=3
        )
        ax.set_yticks(y, terms["label"])
        ax.tick_params(axis="y", labelleft=not same or ax is axes[0][0])
        ax.set_xlabel("share of variance (%) with 95% bootstrap interval")
        ax.set_xlim(0, 100)
        ax.set_title(f"{response_label(dec.response)}: {dec.label}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    return Figure(
        name="shares", title=title, caption=_SHARES_CAPTION, png=png_bytes(fig), data=data
    )


def _pretty(term: str, titles: dict[str, str]) -> str:
    return " × ".join(titles.get(part, part) for part in term.split(" x "))


def pareto_mask(clean: np.ndarray, robust: np.ndarray) -> np.ndarray:
    """Trials not dominated in (clean, robust), both maximised."""
    order = np.lexsort((-robust, -clean))
    best = -np.inf
    mask = np.zeros(len(clean), dtype=bool)
    for i in order:
        if robust[i] > best:
            mask[i] = True
            best = robust[i]
    return mask


def pareto_front(trials: pd.DataFrame) -> Figure | Skipped:
    """Clean against robust accuracy coloured by FLOPs, with the Pareto front highlighted."""
    title = "Clean vs robust accuracy (Pareto front)"
    columns = ["experiment", "trial_id", "clean_acc", "robust_acc", "flops", "flops_dense"]
    pick = [selection_column(trials, "clean_acc"), selection_column(trials, "robust_acc")]
    validation = pick == ["val_clean_acc", "val_robust_acc"]
    if not validation:
        pick = ["clean_acc", "robust_acc"]
    frame = trials[list(dict.fromkeys([*columns, *pick]))]
    frame = frame[np.isfinite(frame["clean_acc"]) & np.isfinite(frame["robust_acc"])]
    if frame.empty:
        return Skipped(
            name="pareto", title=title, reason="no trial has both clean and robust accuracy"
        )
    frame = frame.copy()
    values = [frame[c].fillna(-np.inf).to_numpy(dtype=float) for c in pick]
    frame["on_front"] = pareto_mask(*values)
    if validation:
        caption = (
            "Each point is a trial at its test-split accuracies; the marked trials are the "
            "non-dominated ones on the validation split (what the search optimised), so the "
            "front is chosen without the test split. "
        )
    else:
        caption = (
            "Each point is a trial; the line joins the non-dominated trials (no validation "
            "metrics were recorded, so the front is on the test split). "
        )
    caption += budget_note(trials)
    if len(frame) > MAX_SCATTER:
        sample = frame[~frame["on_front"]].sample(MAX_SCATTER, random_state=0)
        frame = pd.concat([frame[frame["on_front"]], sample])
        caption += f" A random sample of {MAX_SCATTER:,} trials off the front is shown."
    relative, colour, clabel = flops_colour(frame)
    if colour is None:
        caption += " FLOPs were not recorded."
    fig = Canvas(figsize=(7, 5))
    ax = fig.subplots()
    scatter = ax.scatter(
        frame["clean_acc"] * 100,
        frame["robust_acc"] * 100,
        s=14,
        c=colour,
        cmap="viridis" if colour is not None else None,
        alpha=0.7,
        edgecolors="none",
    )
    if colour is not None:
        fig.colorbar(scatter, ax=ax, label=clabel)
    front = frame[frame["on_front"]].sort_values("clean_acc")
    ax.plot(
        front["clean_acc"] * 100,
        front["robust_acc"] * 100,
        color="crimson",
        marker="o",
        markerfacecolor="none",
        linestyle="none" if validation else "-",
        label="Pareto front (validation)" if validation else "Pareto front",
    )
    ax.set_xlabel("clean accuracy (%)")
    ax.set_ylabel("robust accuracy (%)")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    ax.set_title(title)
    data = frame.assign(flops_pct_of_dense=relative)
    return Figure(
        name="pareto",
        title=title,
        caption=caption,
        png=png_bytes(fig),
        data=data.reset_index(drop=True),
    )
