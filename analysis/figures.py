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

from analysis.formatting import budget_note, flops_colour, response_label
from analysis.shares import Decomposition
from robprune.config import MRS_RATIO_RULES

__all__ = [
    "Figure",
    "Skipped",
    "learning_curves",
    "layer_profile",
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


def _png(fig: Canvas) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def _scale(response: str) -> tuple[float, str]:
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
    factor, ylabel = _scale(response)
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
    return Figure(name="sparsity", title=title, caption=caption, png=_png(fig), data=data)


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
    return Figure(name="shares", title=title, caption=_SHARES_CAPTION, png=_png(fig), data=data)


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
    frame = trials[["experiment", "trial_id", "clean_acc", "robust_acc", "flops", "flops_dense"]]
    frame = frame[np.isfinite(frame["clean_acc"]) & np.isfinite(frame["robust_acc"])]
    if frame.empty:
        return Skipped(
            name="pareto", title=title, reason="no trial has both clean and robust accuracy"
        )
    frame = frame.copy()
    frame["on_front"] = pareto_mask(frame["clean_acc"].to_numpy(), frame["robust_acc"].to_numpy())
    caption = "Each point is a trial; the line joins the non-dominated trials. " + budget_note(
        trials
    )
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
        label="Pareto front",
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
        png=_png(fig),
        data=data.reset_index(drop=True),
    )


def _ranked_with(trials: pd.DataFrame, table: pd.DataFrame, response: str) -> pd.DataFrame:
    """Trials that have rows in `table` (epochs or layers), best response first."""
    keys = table[["experiment", "trial_id"]].drop_duplicates()
    present = trials.merge(keys, on=["experiment", "trial_id"], how="inner")
    return present.sort_values(response, ascending=False, kind="stable")


def _rows_of(table: pd.DataFrame, chosen: pd.DataFrame) -> pd.DataFrame:
    """Rows of `table` that belong to the `chosen` trials, in the chosen order."""
    narrowed = table[table["trial_id"].isin(set(chosen["trial_id"]))]
    keys = chosen[["experiment", "trial_id"]].assign(_rank=np.arange(len(chosen)))
    merged = narrowed.merge(keys, on=["experiment", "trial_id"], how="inner")
    return merged.sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)


#: Per-layer estimator columns of layers.parquet, in the order a panel falls back on them.
_ESTIMATOR_COLUMNS = ("mrs_first_order", "mrs_ascent", "mrs_prune_damage")


def _sensitivity(data: pd.DataFrame, trial: pd.Series) -> tuple[pd.Series, str] | None:
    """The MRS line of a panel: what the rule read, else the first estimator the trial recorded."""
    if "mrs" in data and data["mrs"].notna().any():
        estimator = trial.get("mrs_estimator")
        name = estimator if isinstance(estimator, str) and estimator else "MRS"
        return data["mrs"], f"MRS ({name})" if name != "MRS" else name
    for column in _ESTIMATOR_COLUMNS:
        if column in data and data[column].notna().any():
            return data[column], f"MRS ({column.removeprefix('mrs_')}, recorded)"
    return None


def _layer_panel(ax, data: pd.DataFrame, trial: pd.Series, response: str) -> None:
    x = np.arange(len(data))
    ax.bar(x, data["ratio"] * 100, color="tab:blue", alpha=0.75, label="pruning ratio")
    ax.set_ylabel("channels removed (%)")
    ax.set_xticks(x, data["layer"], rotation=60, ha="right", fontsize=8)
    ax.set_xlabel("layer")
    sparsity = trial.get("sparsity_target")
    known = isinstance(sparsity, float) and np.isfinite(sparsity)
    at = f", sparsity {sparsity:g}" if known else ""
    score = f"{response_label(response)} {100 * trial[response]:.1f}%"
    data_set = f"{trial['dataset']}, " if isinstance(trial.get("dataset"), str) else ""
    ax.set_title(
        f"{trial['ratio_rule']}: {trial['trial_id']}, {data_set}{trial['criterion']}, "
        f"{trial['finetune_method']}{at} ({score})",
        fontsize=9,
    )
    handles = ax.get_legend_handles_labels()[0]
    line = _sensitivity(data, trial)
    if line is not None:
        values, name = line
        twin = ax.twinx()
        twin.plot(x, values, color="crimson", marker="o", label=name)
        twin.set_ylabel("MRS (rise of adversarial loss)")
        handles += twin.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize=8)


def layer_profile(
    trials: pd.DataFrame, layers: pd.DataFrame | None, response: str
) -> Figure | Skipped:
    """Per-layer pruning ratios (and MRS) of the best trial of every ratio rule in the data."""
    title = "Per-layer MRS and pruning ratios: the best trial of each ratio rule"
    if layers is None or layers.empty:
        return Skipped(
            name="layers",
            title=title,
            reason="no layers.parquet was found beside the trials table",
        )
    with_layers = _ranked_with(trials, layers, response)
    if with_layers.empty:
        return Skipped(
            name="layers", title=title, reason="no analysed trial has per-layer records"
        )
    rules = sorted(
        with_layers["ratio_rule"].dropna().unique(), key=lambda r: (r in MRS_RATIO_RULES, r)
    )
    chosen = [with_layers[with_layers["ratio_rule"] == rule].iloc[0] for rule in rules]
    columns = min(len(chosen), 2)
    rows = -(-len(chosen) // columns)
    fig = Canvas(figsize=(6.5 * columns, 4.4 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    frames = []
    for ax, trial in zip(axes.ravel(), chosen, strict=False):
        data = _rows_of(layers, trial.to_frame().T)
        _layer_panel(ax, data, trial, response)
        frames.append(data)
    for ax in axes.ravel()[len(chosen) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    caption = (
        "One panel per ratio rule in the data (its best trial by "
        f"{response_label(response)}). Bars: fraction of each layer's channels removed; line: "
        "the MRS the rule read, or for rules that read none an estimator the trial recorded "
        "(prune.record_mrs)."
    )
    if not any(r in MRS_RATIO_RULES for r in rules):
        caption += " No analysed trial used an MRS rule."
    return Figure(
        name="layers",
        title=title,
        caption=caption,
        png=_png(fig),
        data=pd.concat(frames, ignore_index=True),
    )


def learning_curves(
    trials: pd.DataFrame, epochs: pd.DataFrame | None, response: str, top: int = 5
) -> Figure | Skipped:
    """Per-epoch validation accuracies of the best trials."""
    title = f"Learning curves of the top {top} trials"
    if epochs is None or epochs.empty:
        return Skipped(
            name="curves",
            title=title,
            reason="no epochs.parquet was found beside the trials table",
        )
    best = _ranked_with(trials, epochs, response).head(top)
    if best.empty:
        return Skipped(
            name="curves", title=title, reason="no analysed trial has per-epoch records"
        )
    data = _rows_of(epochs, best)
    fig = Canvas(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for (exp, tid), curve in data.groupby(["experiment", "trial_id"], sort=False):
        row = best[(best["experiment"] == exp) & (best["trial_id"] == tid)].iloc[0]
        name = f"{tid}: {row['criterion']}/{row['finetune_method']}"
        axes[0].plot(curve["epoch"], curve["val_robust_acc"] * 100, marker=".", label=name)
        axes[1].plot(curve["epoch"], curve["val_clean_acc"] * 100, marker=".", label=name)
    axes[0].set_ylabel("robust accuracy (%), validation subset")
    axes[1].set_ylabel("clean accuracy (%), validation subset")
    for ax in axes:
        ax.set_xlabel("fine-tuning epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{title} by {response_label(response)}")
    caption = "Per-epoch metrics use the cheaper epoch attack on a fixed validation subset."
    return Figure(
        name="curves",
        title=f"{title} by {response_label(response)}",
        caption=caption,
        png=_png(fig),
        data=data,
    )
