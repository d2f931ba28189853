"""The full factorial of a spec (grid mode), and the dense models a search can ask for.

Conditional choices are crossed only where they apply (TRADES beta only for `trades`), so no
cell repeats another with a value that has no effect. With `search.dedupe` a cell whose
resolved config equals an earlier cell's (lamp under a per-layer ratio rule is l2) is left
out of the grid: the grid avoids the repeat rather than training it twice (docs/plan.md).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from robprune.config import parse_trial_config
from robprune.io.dense_cache import dense_key
from search.spec.conditions import CONDITIONS, is_dense_path
from search.spec.model import GridRepeats, Spec
from search.spec.trial import concrete_config, config_keys, trial_fixed_keys

__all__ = [
    "grid_assignments",
    "grid_trials",
    "GridRepeats",
    "grid_repeats",
    "grid_configs",
    "count_cells",
    "space_size",
    "dense_configs",
    "dense_variants",
]


def grid_assignments(spec: Spec, only_dense: bool = False) -> list[dict[str, Any]]:
    """Every cell of the factorial: conditional choices are crossed only where they apply.

    With `only_dense`, only what the dense model depends on is crossed; every other parameter
    takes its first option (enough to name every dense model a search can ask for).
    """
    cells: list[dict[str, Any]] = [{}]
    for dist in spec.ordered_dists():
        if only_dense and not is_dense_path(dist.path):
            cells = [
                {**c, dist.path: dist.first} if spec.applies(dist.path, c) else c for c in cells
            ]
            continue
        expanded = []
        for cell in cells:
            if spec.applies(dist.path, cell):
                expanded.extend({**cell, dist.path: option} for option in dist.args)
            else:
                expanded.append(cell)
        cells = expanded
    return cells


def grid_repeats(spec: Spec) -> GridRepeats:
    """Which cells resolve like an earlier one (one trial config parsed per cell)."""
    cells = grid_assignments(spec)
    fixed = trial_fixed_keys(spec, "")
    first: dict[str, dict[str, Any]] = {}
    repeats = []
    keys = config_keys([concrete_config(spec, cell, **fixed) for cell in cells])
    for cell, key in zip(cells, keys, strict=True):
        if key in first:
            repeats.append((cell, first[key]))
        else:
            first[key] = cell
    return GridRepeats(cells=len(cells), repeats=tuple(repeats), kept=tuple(first.values()))


def grid_trials(spec: Spec) -> list[tuple[dict[str, Any], int]]:
    """The trials of grid mode: every cell times `search.seeds` replicates, balanced; with
    `search.dedupe`, cells that resolve like an earlier cell are left out (`grid_repeats`).

    Built once, when the spec is parsed (`Spec.grid`); everything else reads that.
    """
    repeats = spec.grid_repeats or grid_repeats(spec)
    cells = list(repeats.kept) if spec.search.dedupe else grid_assignments(spec)
    return list(itertools.product(cells, range(spec.search.seeds)))


def count_cells(spec: Spec) -> int:
    """`len(grid_assignments(spec))` without building the cells: only the parameters others
    depend on are crossed; every other choice multiplies the count (a grid of billions is
    refused before anything enumerates it). Every varied leaf must be a choice."""
    governing = {gov for gov, _ in CONDITIONS.values()}
    partial: list[tuple[dict[str, Any], int]] = [({}, 1)]
    for dist in spec.ordered_dists():
        expanded = []
        for values, count in partial:
            if not spec.applies(dist.path, values):
                expanded.append((values, count))
            elif dist.path in governing:
                expanded.extend(({**values, dist.path: o}, count) for o in dist.args)
            else:
                expanded.append((values, count * len(dist.args)))
        partial = expanded
    return sum(count for _, count in partial)


#: Trial config keys whose written values decide the dense model (`dense_key` reads only
#: these, and the threat's defaults that the data set decides).
_DENSE_WRITTEN = ("seed", "data", "model", "dense", "threat")

#: Cells up to which `space_size` resolves every cell's config to merge cells that resolve
#: alike (lamp under a per-layer rule is l2); above it the size is the cell count, an upper
#: bound (resolving costs about half a millisecond a cell, and `robprune plan` must be quick).
DISTINCT_LIMIT = 2048


def space_size(spec: Spec) -> int | None:
    """Distinct resolved trial configurations when every varied leaf is a choice (grid: times
    the seeds), else None. Optimize and random above `DISTINCT_LIMIT` cells: the cell count."""
    if any(d.kind != "choice" for d in spec.dists):
        return None
    if spec.search.mode == "grid":  # exact: the grid resolves every cell anyway
        return len((spec.grid_repeats or grid_repeats(spec)).kept) * spec.search.seeds
    cells = count_cells(spec)
    return cells if cells > DISTINCT_LIMIT else len(grid_repeats(spec).kept)


def grid_configs(spec: Spec, cache_dir: str) -> list[dict[str, Any]]:
    """Trial configs of grid mode, one per trial of `Spec.grid`."""
    fixed = trial_fixed_keys(spec, cache_dir)
    base_seed = int(spec.fixed_value("seed") or 0) if spec.dist("seed") is None else None
    configs = []
    for cell, replicate in spec.grid:
        extra = dict(fixed)
        if base_seed is not None:
            extra["seed"] = base_seed + replicate
        configs.append(concrete_config(spec, cell, **extra))
    return configs


def dense_configs(spec: Spec, cache_dir: str) -> list[dict[str, Any]]:
    """Configs that together need every dense model the search can use, one per model."""
    if spec.search.mode == "grid":
        return dense_variants(grid_configs(spec, cache_dir))
    fixed = trial_fixed_keys(spec, cache_dir)
    cells = grid_assignments(spec, only_dense=True)
    return dense_variants([concrete_config(spec, cell, **fixed) for cell in cells])


def dense_variants(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One representative config per distinct dense model (robprune.io.dense_cache.dense_key)."""
    seen: dict[str, dict[str, Any]] = {}
    looked: set[str] = set()
    for config in configs:
        # equal dense-model inputs as written give one key: parse and hash each once
        written = json.dumps([config.get(s) for s in _DENSE_WRITTEN], sort_keys=True, default=repr)
        if written in looked:
            continue
        looked.add(written)
        key = dense_key(parse_trial_config(config))
        seen.setdefault(key, config)
    return list(seen.values())
