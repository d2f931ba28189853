"""Numbers in words, for the whole project: accuracies, points, shares, p-values, counts.

One place, so the report's verdict, tables and figures, the finalists table, `robprune run`'s
summary, the masking flags and the progress lines of a running search say the same number the
same way (and name a metric the same way). Accuracies are stored as fractions; "points" are
accuracy points (100 x a difference of fractions), "share points" are differences of variance
shares. Plain numpy, no pandas, no torch: every package imports it.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

__all__ = [
    "cell",
    "fmt_p",
    "fmt_share",
    "fraction",
    "p_text",
    "pct",
    "percent",
    "pts",
    "response_label",
    "sentence",
    "share_points",
    "to_percent",
    "to_units",
    "to_units_interval",
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


def percent(value: float) -> str:
    """An accuracy or a share in a sentence: '45.7%'."""
    return f"{100 * value:.1f}%"


def to_percent(response: str, value: float) -> str:
    """A level of the response in a sentence: accuracies in percent, other metrics as they are
    (a level is not a difference, so not in points)."""
    return percent(value) if response.endswith("_acc") else f"{value:.4g}"


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


def _finite(value: Any) -> bool:
    return value is not None and bool(np.isfinite(value))


def pct(value: Any) -> str:
    """A share or an accuracy in percent, for a table cell ("" when not a number)."""
    return f"{100 * value:.1f}" if _finite(value) else ""


def pts(value: Any, signed: bool = True) -> str:
    """A difference of accuracies in points, signed; unsigned for a size (a minimum
    detectable effect) that cannot be negative."""
    if not _finite(value):
        return ""
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def p_text(value: Any) -> str:
    """A p-value in a table cell."""
    if not _finite(value):
        return ""
    return "< 1e-10" if value < 1e-10 else f"{value:.2g}"


def cell(value: Any, missing: str = "") -> str:
    """Any value in a table or a status line: floats with four significant digits."""
    if isinstance(value, float | np.floating):
        return f"{value:.4g}" if np.isfinite(value) else missing
    return missing if value is None else str(value)


def fraction(value: Any) -> str:
    """A fraction as stored (an accuracy, a sparsity), four decimals ("-" when not measured)."""
    return "-" if value is None else f"{value:.4f}"
