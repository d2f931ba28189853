"""The package layout the architecture promises, checked from the source text alone.

Reads every module of robprune/, search/, analysis/, cluster/ and cli/ with `ast` (nothing is
imported, so the test takes about a second and needs neither torch nor Ray) and checks the
acceptance criteria of the layout (docs/architecture.md, the README's layout table):

- no import circle between modules (function-level and `TYPE_CHECKING` imports count: a
  circle hidden in a function is still one);
- no arrow between packages that the layering does not allow, and no torch/Ray where a
  package promises to run without them;
- inside analysis/, no arrow from a stage of the pipeline up to a later one (read <- design
  <- stats <- verdict <- render <- document), and no file reading once the results are loaded;
- no package module over 400 lines, `robprune/` root at most 10 modules, `search/` in at
  least three sub-packages, at most 5 functions over 60 lines in package code.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import ROOT

PACKAGES = ("robprune", "search", "analysis", "cluster", "cli")

# Which package may import which (docs/architecture.md): the science at the bottom, the search
# on it, the cluster client driving the search; the report reads Parquet through robprune's
# torch-free schema and factor table only. The command line's front door, `cli`, sits on top
# and imports each command's entry module; nothing imports it.
ALLOWED_ARROWS = {
    "robprune": set(),
    "analysis": {"robprune"},
    "search": {"robprune"},
    "cluster": {"robprune", "search"},
    "cli": {"robprune", "search", "analysis", "cluster"},
}
# Sideways arrows allowed inside a function only, with the reason.
LAZY_EXCEPTIONS = {
    ("search", "demo", "analysis"): "`robprune demo` writes the report after its search and "
    "skips it when the analysis package is absent",
}
# Third-party packages a package must not import (any level): robprune/ runs without Ray and
# Optuna; analysis/ runs without torch and Ray.
FORBIDDEN_EXTERNAL = {
    "robprune": {"ray", "optuna"},
    "analysis": {"torch", "torchvision", "torch_pruning", "ray"},
}
HEAVY = {"torch", "torchvision", "torch_pruning", "ray"}
# What `robprune --help` must not load: the front door imports every command's entry module,
# and those defer these to the moment they run.
HEAVY_FOR_THE_FRONT_DOOR = HEAVY | {"optuna", "statsmodels", "matplotlib"}
# analysis/'s sub-packages in pipeline order (docs/architecture.md): a stage imports its own
# and earlier stages only; the package root (the CLI) may import any.
ANALYSIS_STAGES = ("read", "design", "stats", "verdict", "render", "document")
ANALYSIS_ROOT = {"analysis", "analysis.cli"}
# Readers of files, which the stages after the reading of the results must not need: the
# loaded `ResultSet` carries what the tables and specs say (provenance included). `stats/`
# may: its PED-ANOVA cross-check opens the Optuna study, a source of its own.
FILE_READERS = {"pyarrow", "yaml", "optuna"}
NO_READING_STAGES = ("design", "verdict", "render", "document")

MAX_MODULE_LINES = 400
MAX_ROOT_MODULES = 10
MIN_SEARCH_SUBPACKAGES = 3
MAX_FUNCTION_LINES = 60
MAX_LONG_FUNCTIONS = 5


@dataclass(frozen=True, kw_only=True)
class Import:
    """One import statement's target inside the project, or a third-party top-level name."""

    target: str
    internal: bool
    lazy: bool  # inside a function body: runs only when the function does


@dataclass(frozen=True, kw_only=True)
class Module:
    name: str
    path: Path
    tree: ast.Module
    lines: int

    @property
    def package(self) -> str:
        return self.name.split(".")[0]

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


@functools.cache
def modules() -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            text = path.read_text(encoding="utf-8")
            name = ".".join(parts)
            found[name] = Module(
                name=name, path=path, tree=ast.parse(text), lines=len(text.splitlines())
            )
    return found


def _resolve(name: str) -> str | None:
    """The project module a dotted name lives in (its longest prefix that is a module)."""
    known = modules()
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _walk(node: ast.AST, lazy: bool = False):
    """Every import node with whether it sits inside a function."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, lazy
        inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        yield from _walk(child, inner)


@functools.cache
def imports_of(name: str) -> tuple[Import, ...]:
    module = modules()[name]
    found: list[Import] = []
    for node, lazy in _walk(module.tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if module.is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            # `from pkg import sub` imports the submodule when there is one
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules() else source
                for alias in node.names
            ]
        for target in targets:
            top = target.split(".")[0]
            if top in PACKAGES:
                resolved = _resolve(target)
                if resolved and resolved != name:
                    found.append(Import(target=resolved, internal=True, lazy=lazy))
            else:
                found.append(Import(target=top, internal=False, lazy=lazy))
    return tuple(found)


def _graph() -> dict[str, set[str]]:
    return {name: {imp.target for imp in imports_of(name) if imp.internal} for name in modules()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One concrete circle per strongly connected component (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return [_circle_in(graph, set(component)) for component in components]


def _circle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest circle through the component's first module (breadth-first)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    return sorted(component)


def _long_functions() -> list[tuple[int, str]]:
    found = []
    for module in modules().values():
        for node in ast.walk(module.tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    where = f"{module.path.relative_to(ROOT)}:{node.lineno} {node.name}"
                    found.append((length, where))
    return sorted(found, reverse=True)


# -- the machinery can fail ------------------------------------------------------------------


def test_the_reader_sees_the_project() -> None:
    """Guards the checks below against passing on an empty or misread tree."""
    found = modules()
    assert {name.split(".")[0] for name in found} == set(PACKAGES)
    assert len(found) > 80
    graph = _graph()
    assert sum(len(targets) for targets in graph.values()) > 100
    # a known import: the trainable runs robprune's trial
    assert any(
        t.startswith("robprune.trial") for n, ts in graph.items() if "trainable" in n for t in ts
    )


def test_the_circle_finder_finds_and_names_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e2"}, "e2": {"e"}}
    assert sorted(_cycles(graph)) == [["a", "b", "c", "a"], ["e", "e2", "e"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# -- acceptance criteria ---------------------------------------------------------------------


def test_no_import_circle() -> None:
    circles = _cycles(_graph())
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_no_arrow_the_layering_does_not_allow() -> None:
    bad = []
    for name, module in modules().items():
        for imp in imports_of(name):
            if not imp.internal:
                if imp.target in FORBIDDEN_EXTERNAL.get(module.package, ()):
                    bad.append(f"{name} imports {imp.target}")
                continue
            target_package = imp.target.split(".")[0]
            if target_package == module.package:
                continue
            if target_package in ALLOWED_ARROWS[module.package]:
                continue
            basename = name.rpartition(".")[2]
            if imp.lazy and (module.package, basename, target_package) in LAZY_EXCEPTIONS:
                continue
            bad.append(f"{name} imports {imp.target}")
    assert not bad, "arrows the layering does not allow:\n" + "\n".join(sorted(set(bad)))


def _stage(name: str) -> int:
    """A module's place in analysis/'s pipeline; the root comes after every stage."""
    if name in ANALYSIS_ROOT:
        return len(ANALYSIS_STAGES)
    return ANALYSIS_STAGES.index(name.split(".")[1])


def test_every_analysis_module_is_in_a_stage() -> None:
    strays = sorted(
        name
        for name in modules()
        if name.startswith("analysis")
        and name not in ANALYSIS_ROOT
        and name.split(".")[1] not in ANALYSIS_STAGES
    )
    assert not strays, f"analysis modules outside {ANALYSIS_STAGES}: {strays}"


def test_analysis_stages_import_only_earlier_stages() -> None:
    bad = sorted(
        f"{name} imports {imp.target}"
        for name in modules()
        if name.startswith("analysis")
        for imp in imports_of(name)
        if imp.internal and imp.target.startswith("analysis") and _stage(imp.target) > _stage(name)
    )
    assert not bad, "arrows up the analysis pipeline:\n" + "\n".join(bad)


def test_analysis_stages_after_reading_read_no_files() -> None:
    readers = sorted(
        f"{name} imports {imp.target}"
        for name in modules()
        if name.startswith("analysis") and name not in ANALYSIS_ROOT
        if ANALYSIS_STAGES[_stage(name)] in NO_READING_STAGES
        for imp in imports_of(name)
        if not imp.internal and imp.target in FILE_READERS
    )
    assert not readers, "rendering reads files:\n" + "\n".join(readers)


def _loaded_at_import(roots: list[str]) -> set[str]:
    """The project modules importing `roots` runs (parents' __init__ and top-level imports)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parents' __init__
        todo.extend(i.target for i in imports_of(name) if i.internal and not i.lazy)
    return seen


def _heavy_at_import(roots: list[str], heavy: set[str]) -> list[str]:
    return sorted(
        f"{name} imports {imp.target}"
        for name in _loaded_at_import(roots)
        for imp in imports_of(name)
        if not imp.internal and not imp.lazy and imp.target in heavy
    )


def test_analysis_reaches_no_torch_or_ray_at_import() -> None:
    """Importing any analysis module (and the robprune modules it needs) loads no torch/Ray."""
    heavy = _heavy_at_import([n for n in modules() if n.startswith("analysis")], HEAVY)
    assert not heavy, "loaded when analysis is imported:\n" + "\n".join(heavy)


def test_the_front_door_reaches_nothing_heavy_at_import() -> None:
    """`robprune --help` imports every command's entry module, and through them no torch, Ray,
    Optuna, statsmodels or matplotlib."""
    roots = [n for n in modules() if n.startswith("cli")]
    assert "search.cli" in _loaded_at_import(roots)  # the arrows are seen
    heavy = _heavy_at_import(roots, HEAVY_FOR_THE_FRONT_DOOR)
    assert not heavy, "loaded by `robprune --help`:\n" + "\n".join(heavy)


def test_no_package_module_over_400_lines() -> None:
    big = sorted(
        f"{m.path.relative_to(ROOT)}: {m.lines}"
        for m in modules().values()
        if m.lines > MAX_MODULE_LINES
    )
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_robprune_root_holds_at_most_10_modules() -> None:
    root = sorted(p.name for p in (ROOT / "robprune").glob("*.py") if p.name != "__init__.py")
    assert len(root) <= MAX_ROOT_MODULES, f"{len(root)} modules at robprune/'s root: {root}"


def test_search_is_split_into_subpackages() -> None:
    subpackages = sorted(
        p.parent.name for p in (ROOT / "search").glob("*/__init__.py") if p.parent.is_dir()
    )
    assert len(subpackages) >= MIN_SEARCH_SUBPACKAGES, f"search/ sub-packages: {subpackages}"


def test_at_most_5_functions_over_60_lines() -> None:
    long = _long_functions()
    listing = "\n".join(f"{length:4d} {where}" for length, where in long)
    assert len(long) <= MAX_LONG_FUNCTIONS, (
        f"{len(long)} functions over {MAX_FUNCTION_LINES} lines (at most "
        f"{MAX_LONG_FUNCTIONS}):\n{listing}"
    )
