"""Every repository path the documentation names exists.

The README, docs/ and BENCHMARKS.md point readers at files (`search/run/runner.py`,
`tests/test_cluster.py`, `examples/digits.yaml`, ...). A move that forgets the docs leaves them
pointing at nothing; this test lists such paths. CHANGELOG.md is history and may name files
that are gone.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = ("robprune", "search", "analysis", "cluster", "tests", "tools", "benchmarks", "examples")
PATH = re.compile(rf"(?<![\w./-])(?:{'|'.join(TOP)}|docs)/[\w./{{}},*-]*")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")  # tests/FILE, experiments/NAME


def _named_paths(text: str) -> set[str]:
    found = set()
    for match in PATH.finditer(text):
        path = match.group(0).split("::")[0].rstrip(".,:;")
        if any(c in path for c in "{}*,") or path.count("/") == 0:
            continue
        if any(PLACEHOLDER.match(part) for part in path.split("/")):
            continue
        found.add(path)
    return found


def test_the_finder_reads_paths_as_written() -> None:
    text = (
        "see `search/run/runner.py`, tests/test_x.py::test_y, docs/mrs.md. and "
        "https://github.com/a/search/x, tests/FILE, robprune/trial/{run,prepare}.py"
    )
    assert _named_paths(text) == {"search/run/runner.py", "tests/test_x.py", "docs/mrs.md"}


def test_every_path_the_docs_name_exists() -> None:
    missing = sorted(
        f"{doc.relative_to(ROOT)}: {path}"
        for doc in DOCS
        for path in _named_paths(doc.read_text(encoding="utf-8"))
        if not (ROOT / path.rstrip("/")).exists()
    )
    assert len(DOCS) >= 5
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)
