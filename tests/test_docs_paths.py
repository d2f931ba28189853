"""Every repository path and Python name the documentation gives exists.

The README, docs/ and BENCHMARKS.md point readers at files (`search/run/runner.py`,
`tests/cluster/test_cluster_jobs.py`, `examples/digits.yaml`, ...) and at Python names
(`robprune.config.typed_mapping.build`). A move that forgets the docs leaves them pointing at
nothing; this test lists such paths and names, reading the source with `ast` (nothing is
imported). CHANGELOG.md is history and may name files that are gone.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from tests.support.paths import ROOT

DOCS = [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = (
    "robprune",
    "search",
    "analysis",
    "cluster",
    "cli",
    "tests",
    "tools",
    "benchmarks",
    "examples",
)
PATH = re.compile(rf"(?<![\w./-])(?:{'|'.join(TOP)}|docs)/[\w./{{}},*-]*")
PLACEHOLDER = re.compile(r"^[A-Z][A-Z0-9_]*$")  # tests/FILE, experiments/NAME
# `robprune.config.typed_mapping.build`; `search.max_failures` (two parts) is a spec key
DOTTED = re.compile(r"`((?:robprune|search|analysis|cluster|cli)(?:\.[A-Za-z_]\w*)+)")


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


def _module_file(dotted: str) -> Path | None:
    path = ROOT.joinpath(*dotted.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def _top_level_names(module: Path) -> frozenset[str]:
    names = set()
    for node in ast.parse(module.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(names)


def _name_exists(dotted: str) -> bool:
    """The longest module prefix exists and the next part is a module-level name in it."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        module = _module_file(".".join(parts[:end]))
        if module is not None:
            return end == len(parts) or parts[end] in _top_level_names(module)
    return False


def _named_modules(text: str) -> set[str]:
    found = {m.group(1).rstrip(".") for m in DOTTED.finditer(text)}
    return {n for n in found if not (n.startswith("search.") and n.count(".") == 1)}


def test_the_finder_reads_paths_as_written() -> None:
    text = (
        "see `search/run/runner.py`, tests/test_x.py::test_y, docs/mrs.md. and "
        "https://github.com/a/search/x, tests/FILE, robprune/trial/{run,prepare}.py"
    )
    assert _named_paths(text) == {"search/run/runner.py", "tests/test_x.py", "docs/mrs.md"}
    names = "`robprune.errors.ConfigError` `search.max_failures` `robprune.nope.x` `cluster.cli`"
    assert _named_modules(names) == {
        "robprune.errors.ConfigError",
        "robprune.nope.x",
        "cluster.cli",
    }
    assert _name_exists("robprune.errors.ConfigError") and _name_exists("cluster.cli")
    assert not _name_exists("robprune.nope.x") and not _name_exists("robprune.errors.Nope")


def test_every_path_the_docs_name_exists() -> None:
    missing = sorted(
        f"{doc.relative_to(ROOT)}: {path}"
        for doc in DOCS
        for path in _named_paths(doc.read_text(encoding="utf-8"))
        if not (ROOT / path.rstrip("/")).exists()
    )
    assert len(DOCS) >= 5
    assert not missing, "paths named in the docs that do not exist:\n" + "\n".join(missing)


def test_every_python_name_the_docs_give_exists() -> None:
    named = {
        (doc.relative_to(ROOT), name)
        for doc in DOCS
        for name in _named_modules(doc.read_text(encoding="utf-8"))
    }
    assert len(named) > 5
    missing = sorted(f"{doc}: {name}" for doc, name in named if not _name_exists(name))
    assert not missing, "Python names in the docs that do not exist:\n" + "\n".join(missing)
