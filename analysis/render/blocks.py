"""The report's building blocks: the HTML and Markdown writers render the same `Block` list.

Numbers in table cells are formatted by `robprune.formatting`, as everywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.render.figures import Figure
from robprune.formatting import cell

__all__ = ["Block", "heading", "paragraph", "table"]


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


def table(frame: pd.DataFrame, formats: dict | None = None) -> Block:
    formats = formats or {}
    rows = [
        [formats.get(col, cell)(row[col]) for col in frame.columns] for _, row in frame.iterrows()
    ]
    return Block(kind="table", headers=[str(c) for c in frame.columns], rows=rows)
