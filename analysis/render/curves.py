"""Security curves: robust accuracy against the attack budget, one line per finalist and one per
dense model they were pruned from (as the Adversarial Pruning Benchmark shows them).

Read from the finalist columns `eps_sweep_json` / `dense_eps_sweep_json` of trials.parquet:
the finalists stage measures them on its masking-check subset (the first N test images), so no
attack runs here. Tables without those columns give a `Skipped` that says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as Canvas

from analysis.render.figures import Figure, Skipped, png_bytes
from analysis.render.finalists_table import json_list

__all__ = ["security_curves", "curve_rows"]

_TITLE = "Security curves: robust accuracy against the attack budget"


def _rows(text: object) -> list[dict]:
    return [r for r in json_list(text) if isinstance(r, dict)]


def curve_rows(trials: pd.DataFrame) -> pd.DataFrame:
    """model, trial_id, factor (multiple of epsilon), epsilon, accuracy: the bounded budgets of
    every finalist's curve, and once per dense model (keyed by its curve)."""
    columns = ["model", "trial_id", "factor", "epsilon", "accuracy"]
    if "eps_sweep_json" not in trials.columns:
        return pd.DataFrame(columns=columns)
    chosen = trials[trials["eps_sweep_json"].notna()]
    if "finalist_rank" in chosen.columns:
        chosen = chosen.sort_values("finalist_rank")
    out, dense_seen = [], {}
    for _, trial in chosen.iterrows():
        rank = trial.get("finalist_rank")
        name = f"finalist {int(rank)}" if pd.notna(rank) else f"trial {trial['trial_id']}"
        for r in _rows(trial["eps_sweep_json"]):
            if r.get("factor") is not None:
                out.append([name, trial["trial_id"], r["factor"], r["epsilon"], r["accuracy"]])
        dense = trial.get("dense_eps_sweep_json")
        if isinstance(dense, str) and dense not in dense_seen:
            dense_seen[dense] = f"dense {len(dense_seen) + 1}"
            for r in _rows(dense):
                if r.get("factor") is not None:
                    row = [dense_seen[dense], trial["trial_id"], r["factor"], r["epsilon"]]
                    out.append([*row, r["accuracy"]])
    return pd.DataFrame(out, columns=columns)


def security_curves(trials: pd.DataFrame) -> Figure | Skipped:
    """One line per finalist (solid) and per dense model (dashed), x in multiples of epsilon."""
    data = curve_rows(trials)
    if data.empty:
        return Skipped(
            name="security_curves",
            title=_TITLE,
            reason="no finalist carries a security curve (run the finalists stage: "
            "eval.autoattack: finalists or `robprune finalize EXPERIMENT`)",
        )
    fig = Canvas(figsize=(7, 4.5))
    ax = fig.subplots()
    for model, curve in data.groupby("model", sort=False):
        curve = curve.sort_values("factor")
        dense = str(model).startswith("dense")
        ax.plot(
            curve["factor"],
            curve["accuracy"] * 100,
            marker="o",
            linestyle="--" if dense else "-",
            color="black" if dense else None,
            label=f"{model} ({curve['trial_id'].iloc[0]})" if not dense else str(model),
        )
    factors = np.sort(data["factor"].unique())
    ax.set_xticks(factors, [("0" if f == 0 else f"{f:g}ε") for f in factors])
    ax.set_xlabel("attack budget (multiples of the threat's ε)")
    ax.set_ylabel("accuracy under PGD (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(_TITLE)
    caption = (
        "PGD at 0, ε/4, ε/2, ε, 2ε and 4ε on the finalists' masking-check subset (the first N "
        "test images; the finalists stage's eps_sweep), one solid line per finalist and a "
        "dashed line per dense model they were pruned from. A curve that does not fall "
        "towards 0 as the budget grows is a gradient-masking warning (see the flags)."
    )
    return Figure(
        name="security_curves", title=_TITLE, caption=caption, png=png_bytes(fig), data=data
    )
