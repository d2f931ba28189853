"""Figures of chosen trials: each layer's ratio and sensitivity, and the learning curves.

The trials are picked as the best-configurations table picks them, on the validation metric
(`analysis.render.selection`); the test split is shown, never used to choose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as Canvas

from analysis.render.figures import Figure, Skipped, png_bytes
from analysis.render.selection import selection_column
from robprune.config import MRS_RATIO_RULES
from robprune.formatting import percent, response_label

__all__ = ["layer_profile", "learning_curves"]


def _ranked_with(trials: pd.DataFrame, table: pd.DataFrame, response: str) -> pd.DataFrame:
    """Trials that have rows in `table` (epochs or layers), best first on the validation
    metric (`selection_column`), as the best-configurations table ranks them."""
    keys = table[["experiment", "trial_id"]].drop_duplicates()
    present = trials.merge(keys, on=["experiment", "trial_id"], how="inner")
    return present.sort_values(
        selection_column(trials, response), ascending=False, kind="stable", na_position="last"
    )


def _picked_on(trials: pd.DataFrame, response: str) -> str:
    """What the figure's trials were picked on, in words."""
    column = selection_column(trials, response)
    if column == response and not response.startswith(("val_", "epoch")):
        return f"{response_label(response)} (no validation metric was recorded)"
    return response_label(column)


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
    score = f"{response_label(response)} {percent(trial[response])}"
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
        f"{_picked_on(trials, response)}, as in the best-configurations table). "
        "Bars: fraction of each layer's channels removed; line: "
        "the MRS the rule read, or for rules that read none an estimator the trial recorded "
        "(prune.record_mrs)."
    )
    if not any(r in MRS_RATIO_RULES for r in rules):
        caption += " No analysed trial used an MRS rule."
    return Figure(
        name="layers",
        title=title,
        caption=caption,
        png=png_bytes(fig),
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
    picked = _picked_on(trials, response)
    fig.suptitle(f"{title} by {picked}")
    caption = "Per-epoch metrics use the cheaper epoch attack on a fixed validation subset."
    return Figure(
        name="curves",
        title=f"{title} by {picked}",
        caption=caption,
        png=png_bytes(fig),
        data=data,
    )
