"""Self-contained index.html: figures embedded as base64 PNG, no external resources.

A small inline script records, once the page has loaded, how many images decoded with a
non-zero size (in #render-status), so a headless browser test can check the figures rendered.
"""

from __future__ import annotations

import base64
import html

from analysis.render.blocks import Block

__all__ = ["render_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; margin-top: 2em; }
.verdict { background: #f3f7ff; border-left: 5px solid #2a62c9; padding: 0.8em 1.2em; }
.verdict .headline { font-weight: bold; font-size: 1.15em; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f0f0f0; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.9em; color: #555; }
#render-status { color: #888; font-size: 0.8em; }
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var images = document.querySelectorAll('img');
  var loaded = 0;
  images.forEach(function (img) {
    img.setAttribute('data-natural-width', String(img.naturalWidth));
    img.setAttribute('data-natural-height', String(img.naturalHeight));
    if (img.complete && img.naturalWidth > 0 && img.naturalHeight > 0) { loaded += 1; }
  });
  var status = document.getElementById('render-status');
  var notDrawn = Number(status.getAttribute('data-not-drawn') || '0');
  status.setAttribute('data-images', String(images.length));
  status.setAttribute('data-loaded', String(loaded));
  status.setAttribute('data-page-width', String(document.documentElement.scrollWidth));
  status.setAttribute('data-view-width', String(window.innerWidth));
  status.textContent = 'figures rendered: ' + loaded + ' of the ' + images.length + ' drawn' +
    (notDrawn ? '; ' + notDrawn + ' not drawn (the text says why)' : '');
});
"""


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _block(block: Block, first_heading: bool) -> str:
    if block.kind == "heading":
        tag = "h1" if first_heading else "h2"
        return f"<{tag}>{_esc(block.text)}</{tag}>"
    if block.kind == "paragraph":
        return f"<p>{_esc(block.text)}</p>"
    if block.kind == "verdict":
        body = "".join(f"<p>{_esc(t)}</p>" for t in block.items or [])
        return (
            f'<div class="verdict" id="verdict"><p class="headline">{_esc(block.text)}</p>'
            f"{body}</div>"
        )
    if block.kind == "list":
        return "<ul>" + "".join(f"<li>{_esc(i)}</li>" for i in block.items or []) + "</ul>"
    if block.kind == "table":
        head = "".join(f"<th>{_esc(h)}</th>" for h in block.headers or [])
        rows = "".join(
            "<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>"
            for row in block.rows or []
        )
        return (
            f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
            "</table></div>"
        )
    if block.kind == "figure" and block.figure is not None:
        fig = block.figure
        data = base64.b64encode(fig.png).decode("ascii")
        return (
            f'<figure id="fig-{_esc(fig.name)}"><img alt="{_esc(fig.title)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{_esc(fig.title)}. '
            f"{_esc(fig.caption)} Data: {_esc(fig.name)}.csv</figcaption></figure>"
        )
    raise ValueError(f"unknown block kind {block.kind!r}")


def render_html(blocks: list[Block], title: str, not_drawn: int = 0) -> str:
    """The complete page as one string; `not_drawn` figures were skipped (said in the text)."""
    parts = [_block(b, i == 0) for i, b in enumerate(blocks)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(parts)
        + f'\n<p id="render-status" data-not-drawn="{not_drawn}" data-images="0" '
        + 'data-loaded="0">figures not checked</p>'
        + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )
