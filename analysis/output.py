"""Write a `Report` to a directory: index.html, report.md, one PNG and CSV per figure, CSVs."""

from __future__ import annotations

from pathlib import Path

from analysis.figures import Figure
from analysis.html import render_html
from analysis.markdown import render_markdown
from analysis.present import blocks
from analysis.report import Report
from robprune.atomic_io import atomic_write_bytes
from robprune.errors import BadInput

__all__ = ["write_report"]


def _write(path: Path, data: bytes) -> None:
    """Temporary file then rename, so a reader never opens half a report."""
    atomic_write_bytes(data, path)


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
            _write(out / f"{fig.name}.png", fig.png)
            _write(out / f"{fig.name}.csv", fig.data.to_csv(index=False).encode())
    for name, table in report.tables.items():
        _write(out / f"{name}.csv", table.to_csv(index=False).encode())
    content = blocks(report)
    title = content[0].text if content else "robprune report"
    _write(out / "report.md", render_markdown(content).encode())
    index = out / "index.html"
    _write(index, render_html(content, title).encode())
    return index
