"""docs/results.md's column tables, made from the Arrow schemas' field descriptions.

The schema (`robprune.io.results_schema`) is the one place a column is described; this
renders it. `python -m robprune.io.results_doc` rewrites the part of docs/results.md between
the markers; a test fails when the file and the schema disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa

from robprune.io.results_schema import SCHEMAS, TRIAL_STATES

__all__ = ["BEGIN", "END", "column_tables", "describe_field", "update_doc"]

BEGIN = "<!-- columns: made by `python -m robprune.io.results_doc`; edit the schema -->"
END = "<!-- end of columns -->"
_HEAD = "| column | type | meaning | unit | split | attack |\n|---|---|---|---|---|---|"


def describe_field(field: pa.Field) -> dict[str, str]:
    """The field's description, unit, split and attack (empty where not said)."""
    meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
    return {key: meta.get(key, "") for key in ("description", "unit", "split", "attack")}


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or "-"


def column_tables() -> str:
    """The trial states, then one Markdown table per Parquet table, every column in order."""
    states = "\n".join(f"| `{k}` | {v} |" for k, v in TRIAL_STATES.items())
    parts = [f"### Trial states (`status`)\n\n| status | meaning |\n|---|---|\n{states}"]
    for name, schema in SCHEMAS.items():
        rows = [f"### {name}.parquet\n", _HEAD]
        for field in schema:
            d = describe_field(field)
            cells = (d["description"], d["unit"], d["split"], d["attack"])
            rows.append(
                f"| `{field.name}` | {field.type} | " + " | ".join(map(_cell, cells)) + " |"
            )
        parts.append("\n".join(rows))
    return "\n\n".join(parts)


def update_doc(path: Path) -> bool:
    """Rewrite the generated part of `path`; whether it changed."""
    text = path.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n\n{column_tables()}\n\n{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    doc = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/results.md")
    print(f"{doc}: {'updated' if update_doc(doc) else 'up to date'}")
