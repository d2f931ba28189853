"""How a package reads from outside: its rooms, arrows and floors, and a walk through a call.

    python tools/structure_sketch.py analysis search            # rooms, arrows, floors
    python tools/structure_sketch.py --walk search.run.runner:run_search

*Rooms* are a package's modules; *arrows* the distinct imports between two of its modules
(function-level ones included); *floors* the longest chain of arrows plus one (a package
whose modules import nothing of its own has one floor); *circles* the modules on an import
cycle. The same again with each sub-package as one *wing*: how the package reads to someone
who first looks at its folders.

The *walk* follows a function's calls depth first, in the order they appear in its body, each
function once, through every function of the project that the call names resolve to (module
functions and classes, `self.` methods, and the functions of imported project modules); a
*stop* is each time the walk enters a module other than the one it is in, a *return* a stop in
a module it had already left. It is read from the source with `ast` (nothing imported), so
calls through objects whose class the source does not name are not followed: it is a sketch
for comparing two versions of the same code, not a call graph.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Module:
    name: str
    tree: ast.Module
    #: local name -> project module or project module's attribute ("pkg.mod" or "pkg.mod:f")
    names: dict[str, str] = field(default_factory=dict)
    functions: dict[str, ast.AST] = field(default_factory=dict)


def load(root: Path, packages: list[str]) -> dict[str, Module]:
    """Every module of `packages` under `root`, with its imports resolved to project names."""
    found: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = Module(name, ast.parse(path.read_text(), str(path)))
    for module in found.values():
        _index(module, found)
    return found


def _index(module: Module, known: dict[str, Module]) -> None:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                local = alias.asname or alias.name
                target = f"{node.module}.{alias.name}"
                if target in known:
                    module.names[local] = target
                elif node.module in known:
                    module.names[local] = f"{node.module}:{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    module.names[alias.asname or alias.name] = alias.name
    for node in module.tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            module.functions[node.name] = node
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        module.functions[f"{node.name}.{item.name}"] = item


def arrows(modules: dict[str, Module], package: str) -> set[tuple[str, str]]:
    """Distinct imports from one module of `package` to another."""
    inside = {n for n in modules if n == package or n.startswith(package + ".")}
    out = set()
    for name in inside:
        for target in modules[name].names.values():
            target = target.split(":")[0]
            if target in inside and target != name:
                out.add((name, target))
    return out


def floors_and_circles(rooms: set[str], edges: set[tuple[str, str]]) -> tuple[int, set[str]]:
    """Longest chain of arrows (plus one) over the acyclic part, and the modules on a cycle."""
    after: dict[str, set[str]] = {r: set() for r in rooms}
    for a, b in edges:
        after[a].add(b)
    depth: dict[str, int] = {}
    on_cycle: set[str] = set()

    def visit(node: str, path: list[str]) -> int:
        if node in path:
            on_cycle.update(path[path.index(node) :])
            return 0
        if node not in depth:
            path.append(node)
            depth[node] = 1 + max((visit(n, path) for n in after[node]), default=0)
            path.pop()
        return depth[node]

    return max((visit(r, []) for r in rooms), default=0), on_cycle


def _wing(module: str, package: str) -> str:
    """The sub-package of `package` a module lives in (a top-level module is its own)."""
    rest = module.removeprefix(package).lstrip(".")
    return f"{package}.{rest.split('.')[0]}" if rest else package


def _calls(body: ast.AST) -> list[ast.Call]:
    """Calls in source order (ast.walk is breadth first)."""
    calls = [n for n in ast.walk(body) if isinstance(n, ast.Call)]
    return sorted(calls, key=lambda c: (c.lineno, c.col_offset))


def _resolve(call: ast.Call, module: Module, cls: str | None, modules: dict) -> str | None:
    """`module:function` a call names, where the source says which."""
    func = call.func
    if isinstance(func, ast.Name):
        if func.id in module.functions:
            return f"{module.name}:{func.id}"
        target = module.names.get(func.id)
        if target and ":" in target:
            return target
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        owner = func.value.id
        if owner == "self" and cls and f"{cls}.{func.attr}" in module.functions:
            return f"{module.name}:{cls}.{func.attr}"
        target = module.names.get(owner)
        if target and ":" not in target and func.attr in modules[target].functions:
            return f"{target}:{func.attr}"
        if owner in module.functions and f"{owner}.{func.attr}" in module.functions:
            return f"{module.name}:{owner}.{func.attr}"
    return None


def walk(modules: dict[str, Module], entry: str) -> list[str]:
    """The modules the walk from `entry` ("pkg.mod:function") enters, one per stop."""
    seen: set[str] = set()
    stops: list[str] = []

    def visit(qualified: str) -> None:
        if qualified in seen:
            return
        seen.add(qualified)
        mod_name, _, func_name = qualified.partition(":")
        module = modules.get(mod_name)
        if module is None or func_name not in module.functions:
            return
        if not stops or stops[-1] != mod_name:
            stops.append(mod_name)
        node = module.functions[func_name]
        cls = func_name.split(".")[0] if "." in func_name else None
        if isinstance(node, ast.ClassDef):
            init = f"{mod_name}:{func_name}.__init__"
            if f"{func_name}.__init__" in module.functions:
                visit(init)
        for call in _calls(node):
            target = _resolve(call, module, cls, modules)
            if target:
                visit(target)
                if stops[-1] != mod_name:
                    stops.append(mod_name)

    visit(entry)
    return stops


def describe_walk(stops: list[str], entry: str) -> str:
    returns = sum(1 for i, m in enumerate(stops) if m in stops[:i])
    busiest = Counter(stops).most_common(3)
    top = ", ".join(f"{m} {n}" for m, n in busiest)
    return (
        f"walk from {entry}: {len(stops)} stops in {len(set(stops))} modules, "
        f"{returns} returns to a module already left; entered most: {top}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="*", help="packages to sketch (rooms, arrows, floors)")
    parser.add_argument("--walk", action="append", default=[], help="module:function to walk")
    parser.add_argument("--root", default=str(ROOT), help="the checkout to read")
    args = parser.parse_args(argv)
    root = Path(args.root)
    tops = sorted({p.parent.name for p in root.glob("*/__init__.py")})
    modules = load(root, tops)
    for package in args.packages:
        rooms = {n for n in modules if n == package or n.startswith(package + ".")}
        edges = arrows(modules, package)
        floors, circles = floors_and_circles(rooms, edges)
        print(
            f"{package}: {len(rooms)} rooms, {len(edges)} arrows, {floors} floors, "
            f"{len(circles)} modules on circles"
        )
        wing_edges = {(_wing(a, package), _wing(b, package)) for a, b in edges}
        wing_edges = {(a, b) for a, b in wing_edges if a != b}
        wings = {_wing(r, package) for r in rooms}
        floors, circles = floors_and_circles(wings, wing_edges)
        print(
            f"  in wings (sub-packages; top-level modules each their own): {len(wings)} wings, "
            f"{len(wing_edges)} arrows, {floors} floors, {len(circles)} wings on circles"
        )
    for entry in args.walk:
        stops = walk(modules, entry)
        print(describe_walk(stops, entry))
    return 0


if __name__ == "__main__":
    sys.exit(main())
