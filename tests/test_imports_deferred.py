"""Imports inside functions are the exception: each defers something heavy, or says why.

An import inside a function hides an arrow until the function runs and makes every caller pay
for it then; it is worth that only where a heavy package (torch, Ray, Optuna, statsmodels,
matplotlib, ...) must not load at import time: `robprune --help`, `robprune plan` and
`robprune report` load none they do not need, and Ray must not load before the driver has set
its environment. Read with `ast` (tests/test_layout.py's reader), nothing imported.
"""

from __future__ import annotations

from tests.test_layout import _loaded_at_import, _walk, imports_of, modules

#: At most this many function-level imports in package code.
MAX_DEFERRED = 39
#: What counts as heavy: loading it costs a second or more, or a package promises to run
#: without it until it is needed.
HEAVY = {
    "torch",
    "torchvision",
    "torch_pruning",
    "ray",
    "optuna",
    "statsmodels",
    "matplotlib",
    "scipy",
    "sklearn",
    "PIL",
    "pyautoattack",
}
#: Function-level imports of nothing heavy, with the reason (module, imported module).
REASONS = {
    ("search.demo", "analysis.cli"): "`robprune demo` writes the report after its search and "
    "skips it when the analysis package is absent (a sideways arrow: tests/test_layout.py)",
}


def _deferred() -> list[tuple[str, int, str, bool]]:
    """(module, line, imported, internal) for every import inside a function body."""
    found = []
    for name, module in modules().items():
        for node, lazy in _walk(module.tree):
            if not lazy:
                continue
            assert not getattr(node, "level", 0), f"{name}:{node.lineno}: a relative import"
            base = getattr(node, "module", None)
            # `from package import module, ...`: what it imports is those modules
            names = [f"{base}.{a.name}" if base else a.name for a in node.names]
            known = [n for n in names if n in modules()]
            dotted = ",".join(known) if base and known else base or names[0]
            found.append((name, node.lineno, dotted, dotted.split(".")[0] in _packages()))
    return sorted(found)


def _packages() -> set[str]:
    return {name.split(".")[0] for name in modules()}


def _heavy_behind(dotted: str) -> set[str]:
    """The heavy packages importing this project module (or a parent) loads."""
    known = modules()
    while dotted and dotted not in known:
        dotted = dotted.rpartition(".")[0]
    if not dotted:
        return set()
    return {
        imp.target
        for name in _loaded_at_import([dotted])
        for imp in imports_of(name)
        if not imp.internal and not imp.lazy and imp.target in HEAVY
    }


def test_the_counter_sees_the_deferred_imports() -> None:
    found = _deferred()
    assert any(m == "search.run.runner" and "tuner" in what for m, _, what, _ in found)
    assert any(m == "robprune.data.cifar" and what == "torchvision" for m, _, what, _ in found)


def test_at_most_so_many_function_level_imports() -> None:
    found = _deferred()
    listing = "\n".join(f"{m}:{line} {what}" for m, line, what, _ in found)
    assert len(found) <= MAX_DEFERRED, (
        f"{len(found)} imports inside functions (at most {MAX_DEFERRED}): move the ones that "
        f"load nothing heavy to the module's top\n{listing}"
    )


def test_each_function_level_import_defers_something_heavy_or_says_why() -> None:
    light = []
    for module, line, what, internal in _deferred():
        if internal:
            heavy = set().union(*(_heavy_behind(part) for part in what.split(",")))
        else:
            heavy = {what.split(".")[0]} & HEAVY
        if not heavy and (module, _resolved(what)) not in REASONS:
            light.append(f"{module}:{line} {what}")
    assert not light, "imports inside functions that defer nothing heavy:\n" + "\n".join(light)


def _resolved(dotted: str) -> str:
    known = modules()
    while dotted and dotted not in known:
        dotted = dotted.rpartition(".")[0]
    return dotted
