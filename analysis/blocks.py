"""The report's building blocks and the one place numbers are formatted for it.

Shares and accuracies in percent, differences of accuracies in signed points, p-values with
two significant digits; the HTML and Markdown writers render the same `Block` list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.figures import Figure

__all__ = ["Block", "cell", "heading", "p_text", "paragraph", "pct", "pts", "table"]


@dataclass(frozen=True, kw_only=True)
class Block:
    """kind: heading | paragraph | verdict | table | figure | list."""

    kind: str
    text: str = ""
    headers: list[str] | None = None
    rows: list[list[str]] | None = None
    figure: Figure | None = None
    items: list[str] | None = None


def heading(text: str) -> Block:
    return Block(kind="heading", text=text)


def paragraph(text: str) -> Block:
    return Block(kind="paragraph", text=text)


def pct(value) -> str:
    """A share or an accuracy in percent."""
    return "" if value is None or not np.isfinite(value) else f"{100 * value:.1f}"


def pts(value) -> str:
    """A difference of accuracies, in points (may be negative)."""
    return "" if value is None or not np.isfinite(value) else f"{100 * value:+.1f}"


def p_text(value) -> str:
    if value is None or not np.isfinite(value):
        return ""
    return "< 1e-10" if value < 1e-10 else f"{value:.2g}"


def cell(value) -> str:
    if isinstance(value, float | np.floating):
        return "" if not np.isfinite(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def table(frame: pd.DataFrame, formats: dict | None = None) -> Block:
    formats = formats or {}
    rows = [
        [formats.get(col, cell)(row[col]) for col in frame.columns] for _, row in frame.iterrows()
    ]
    return Block(kind="table", headers=[str(c) for c in frame.columns], rows=rows)
