"""Numbers in words: shares in percent, accuracies in points, responses by name.

One place, so the verdict, the tables and the figures say the same thing the same way.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = [
    "budget_note",
    "flops_colour",
    "fmt_p",
    "fmt_share",
    "share_points",
    "to_units_interval",
    "response_label",
    "sentence",
    "to_units",
]


def response_label(response: str) -> str:
    """'robust_acc' -> 'robust accuracy'; other metrics with spaces for underscores.

    'epoch3_val_robust_acc' (the headline of an early-stopped search) -> 'validation robust
    accuracy at epoch 3'.
    """
    match = re.fullmatch(r"epoch(\d+)_val_(\w+)", response)
    if match:
        return f"validation {response_label(match.group(2))} at epoch {match.group(1)}"
    if response.startswith("val_"):
        return f"validation {response_label(response.removeprefix('val_'))}"
    names = {
        "robust_acc": "robust accuracy",
        "clean_acc": "clean accuracy",
        "strong_acc": "strong robust accuracy (APGD-CE + APGD-T, worst case per image)",
    }
    return names.get(response, response.replace("_", " "))


def to_units(response: str, value: float) -> str:
    """Accuracies (fractions) as accuracy points; other metrics as they are."""
    if response.endswith("_acc"):
        return f"{100 * value:.1f} points"
    return f"{value:.4g}"


def fmt_share(value: float, lo: float | None = None, hi: float | None = None) -> str:
    """A share in percent, with one decimal when the number (or its interval) is small."""
    fine = value < 0.01 or (lo is not None and hi is not None and hi - lo < 0.03)
    digits = 1 if fine else 0
    text = f"{100 * value:.{digits}f}%"
    if lo is not None and hi is not None:
        text += f" [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"
    return text


def share_points(diff: float, lo: float, hi: float) -> str:
    """A difference of variance shares, in share points (never bare "points", which are
    accuracy points everywhere else in the report), with its interval."""
    digits = 1 if hi - lo < 0.03 else 0
    return f"{100 * diff:.{digits}f} share points [{100 * lo:.{digits}f}, {100 * hi:.{digits}f}]"


def to_units_interval(response: str, value: float, lo: float, hi: float) -> str:
    """An effect with its interval: '12.3 points [10.1, 14.5]' for accuracies."""
    if not np.isfinite(value):
        return "not estimable"
    if response.endswith("_acc"):
        return f"{100 * value:.1f} points [{100 * lo:.1f}, {100 * hi:.1f}]"
    return f"{value:.4g} [{lo:.4g}, {hi:.4g}]"


def fmt_p(p: float) -> str:
    """A p-value in a sentence."""
    if not np.isfinite(p):
        return "p not computable"
    return "p < 1e-10" if p < 1e-10 else f"p = {p:.2g}"


def sentence(text: str) -> str:
    """Capitalise the first letter only (factor titles keep their case)."""
    return text[:1].upper() + text[1:]


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
