"""Plain tables of the report: best configurations, every factor level, and what was excluded."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.design.estimable import NotEstimable
from analysis.design.factorial import Design
from analysis.read.load import ResultSet
from analysis.render.selection import selection_column
from analysis.stats.emm import Effect
from analysis.stats.shares import Decomposition
from robprune.config.factors import label

__all__ = ["best_configs", "exclusions", "factor_levels", "factor_summary"]

_METRICS = ("clean_acc", "robust_acc", "achieved_sparsity", "flops", "flops_dense")


def best_configs(trials: pd.DataFrame, design: Design, response: str, top: int = 10):
    """The `top` trials with their factors and main metrics.

    Ranked by the response's validation value where the table has one (`val_robust_acc`), so
    that the test split is only reported, never selected on; else by the response itself.
    """
    rank_by = selection_column(trials, response)
    columns = ["experiment", "trial_id", "seed"]
    columns += [c for f in design.factors for c in f.columns]
    columns += [m for m in _METRICS if m != response] + [response, rank_by]
    best = trials.nlargest(top, rank_by)[list(dict.fromkeys(columns))].copy()
    if "flops" in best and "flops_dense" in best:
        with np.errstate(invalid="ignore", divide="ignore"):
            best["flops_kept"] = best["flops"] / best["flops_dense"]
        best = best.drop(columns=["flops", "flops_dense"])
    return best.reset_index(drop=True)


def factor_levels(
    trials: pd.DataFrame, design: Design, response: str, effects: list[Effect] | None = None
) -> pd.DataFrame:
    """Marginal mean (from `effects`), raw mean and spread of the response at every level."""
    frames = []
    y = trials[response].to_numpy(dtype=float)
    clean = trials["clean_acc"].to_numpy(dtype=float)
    for j, factor in enumerate(design.factors):
        codes = design.codes[:, j]
        for i, level in enumerate(factor.levels):
            mask = codes == i
            if not mask.any():
                continue
            frames.append(
                {
                    "factor": factor.name,
                    "level": level,
                    "n": int(mask.sum()),
                    f"marginal_mean_{response}": float(effects[j].means[i]) if effects else np.nan,
                    f"raw_mean_{response}": float(np.mean(y[mask])),
                    f"sd_{response}": float(np.std(y[mask], ddof=1)) if mask.sum() > 1 else np.nan,
                    "mean_clean_acc": float(np.nanmean(clean[mask]))
                    if np.isfinite(clean[mask]).any()
                    else np.nan,
                }
            )
    return pd.DataFrame(frames)


def factor_summary(
    design: Design, dec: Decomposition | NotEstimable, effects: list[Effect] | None = None
) -> pd.DataFrame:
    """One row per factor of FACTOR_COLUMNS that varied or was held fixed; a varying factor
    has its share beside its effect (best minus worst marginal mean, Tukey interval)."""
    rows = []
    for j, factor in enumerate(design.factors):
        row = {
            "factor": factor.name,
            "title": factor.title,
            "levels": len(factor.levels),
            "values": ", ".join(factor.levels[:12]) + (" ..." if len(factor.levels) > 12 else ""),
            "binned": factor.binned,
        }
        if isinstance(dec, Decomposition):
            row.update(
                share=dec.shares[j],
                share_lo=dec.lo[j],
                share_hi=dec.hi[j],
                p_value=dec.p_values[j],
                p_holm=dec.p_adjusted[j],
            )
        if effects:
            eff = effects[j]
            row.update(
                effect=eff.size,
                effect_lo=eff.lo,
                effect_hi=eff.hi,
                best=factor.levels[eff.best] if eff.best is not None else None,
                worst=factor.levels[eff.worst] if eff.worst is not None else None,
            )
        rows.append(row)
    if design.block is not None:
        row = {
            "factor": design.block.name,
            "title": design.block.title,
            "levels": len(design.block.levels),
            "values": ", ".join(design.block.levels[:12]),
            "binned": False,
        }
        if isinstance(dec, Decomposition) and dec.block is not None:
            b = dec.block
            row.update(share=b.share, share_lo=b.lo, share_hi=b.hi, p_value=b.p_value)
        rows.append(row)
    for column, value in design.constant.items():
        rows.append(
            {
                "factor": column,
                "title": label(column),
                "levels": 1,
                "values": value,
                "binned": False,
            }
        )
    return pd.DataFrame(rows)


def exclusions(
    results: ResultSet, response: str, missing_response: int, unseeded: int = 0
) -> pd.DataFrame:
    """Counts of trials left out of the analysis, by reason."""
    rows = [
        {"reason": f"status {status}", "trials": count}
        for status, count in results.excluded.items()
    ]
    if missing_response:
        rows.append({"reason": f"{response} missing or not finite", "trials": missing_response})
    if unseeded:
        rows.append({"reason": "no seed recorded (others form seed blocks)", "trials": unseeded})
    for error, count in results.top_errors:
        rows.append({"reason": f"  error: {error}", "trials": count})
    return pd.DataFrame(rows, columns=["reason", "trials"])
