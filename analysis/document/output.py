"""Write a `Report` to a directory: index.html, report.md, one PNG and CSV per figure, CSVs."""

from __future__ import annotations

from pathlib import Path

from analysis.document.build import Report
from analysis.document.layout import blocks
from analysis.render.figures import Figure
from analysis.render.html import render_html
from analysis.render.markdown import render_markdown
from robprune.errors import BadInput
from robprune.io.atomic import atomic_write_bytes

__all__ = ["write_report"]


def write_report(report: Report, output: str | Path) -> Path:
    """Write every file; returns the path of index.html."""
    out = Path(output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{out}: cannot create the output directory ({exc.strerror})") from exc
    if not out.is_dir():
        raise BadInput(f"{out}: exists and is not a directory")
    for fig in report.figures:
        if isinstance(fig, Figure):
            atomic_write_bytes(fig.png, out / f"{fig.name}.png")
            atomic_write_bytes(fig.data.to_csv(index=False).encode(), out / f"{fig.name}.csv")
    for name, table in report.tables.items():
        atomic_write_bytes(table.to_csv(index=False).encode(), out / f"{name}.csv")
    content = blocks(report)
    title = content[0].text if content else "robprune report"
    atomic_write_bytes(render_markdown(content).encode(), out / "report.md")
    index = out / "index.html"
    not_drawn = sum(not isinstance(f, Figure) for f in report.figures)
    atomic_write_bytes(render_html(content, title, not_drawn).encode(), index)
    return index
