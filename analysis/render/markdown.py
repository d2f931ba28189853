"""report.md: the same content as index.html, with figures as PNG files beside it."""

from __future__ import annotations

from analysis.render.blocks import Block

__all__ = ["render_markdown"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _block(block: Block, first_heading: bool) -> str:
    if block.kind == "heading":
        return ("# " if first_heading else "## ") + block.text
    if block.kind == "paragraph":
        return block.text
    if block.kind == "verdict":
        body = "\n>\n".join(f"> {t}" for t in block.items or [])
        return f"> **{block.text}**\n>\n{body}"
    if block.kind == "list":
        return "\n".join(f"- {item}" for item in block.items or [])
    if block.kind == "table":
        headers = block.headers or []
        lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows or []]
        return "\n".join(lines)
    if block.kind == "figure" and block.figure is not None:
        fig = block.figure
        return (
            f"![{fig.title}]({fig.name}.png)\n\n*{fig.title}.* {fig.caption} "
            f"Data: [{fig.name}.csv]({fig.name}.csv)"
        )
    raise ValueError(f"unknown block kind {block.kind!r}")


def render_markdown(blocks: list[Block]) -> str:
    return "\n\n".join(_block(b, i == 0) for i, b in enumerate(blocks)) + "\n"
