"""From a spec to trials: Optuna's define-by-run space, and the full factorial for grid mode.

Conditional parameters are sampled only when their option is chosen (TRADES beta only for
`trades`, the MRS temperature only for `mrs`), so Optuna learns nothing about a value that had
no effect, and the trial config leaves them out. Both objects are picklable and live in an
importable module: `Tuner.restore` unpickles them.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from search.conditions import is_dense_path
from search.dists import Dist
from search.spec import Spec, concrete_config

__all__ = [
    "SpaceFunction",
    "grid_assignments",
    "grid_configs",
    "trial_fixed_keys",
    "suggest",
    "decode_choice",
    "dense_configs",
    "dense_variants",
]

_SCALARS = (str, int, float, bool, type(None))


def _scalar_options(dist: Dist) -> bool:
    return all(isinstance(v, _SCALARS) for v in dist.args)


def suggest(trial: Any, dist: Dist) -> Any:
    """Ask Optuna for one value; non-scalar options (lists) travel as their JSON text."""
    if dist.kind == "choice":
        if _scalar_options(dist):
            return trial.suggest_categorical(dist.path, list(dist.args))
        raw = trial.suggest_categorical(dist.path, [json.dumps(v) for v in dist.args])
        return decode_choice(dist, raw)
    lo, hi = dist.args
    if dist.kind == "int":
        return trial.suggest_int(dist.path, int(lo), int(hi))
    return trial.suggest_float(dist.path, float(lo), float(hi), log=dist.kind == "loguniform")


def decode_choice(dist: Dist, value: Any) -> Any:
    if dist.kind == "choice" and not _scalar_options(dist) and isinstance(value, str):
        return json.loads(value)
    return value


def trial_fixed_keys(spec: Spec, cache_dir: str) -> dict[str, Any]:
    """Keys every trial of an experiment shares: its name and the shared dense cache."""
    fixed: dict[str, Any] = {"name": spec.name}
    if "cache_dir" not in spec.template:
        fixed["cache_dir"] = cache_dir
    return fixed


class SpaceFunction:
    """Define-by-run search space for `OptunaSearch`: returns `{"trial": config}`.

    The sampled values themselves also appear in Tune's config (as `prune.sparsity` and so on)
    through OptunaSearch's capture of the suggest calls.
    """

    def __init__(self, spec: Spec, cache_dir: str, extra: dict[str, Any] | None = None):
        self.spec = spec
        self.fixed = trial_fixed_keys(spec, cache_dir)
        self.extra = dict(extra or {})

    def __call__(self, trial: Any) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for dist in self.spec.ordered_dists():
            if self.spec.applies(dist.path, values):
                values[dist.path] = suggest(trial, dist)
        return {"trial": concrete_config(self.spec, values, **self.fixed), **self.extra}


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


def grid_configs(spec: Spec, cache_dir: str) -> list[dict[str, Any]]:
    """Trial configs of grid mode: every cell times `search.seeds` replicates, balanced."""
    fixed = trial_fixed_keys(spec, cache_dir)
    base_seed = int(spec.fixed_value("seed") or 0) if spec.dist("seed") is None else None
    configs = []
    for cell, replicate in itertools.product(grid_assignments(spec), range(spec.search.seeds)):
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
    """One representative config per distinct dense model (see robprune.trial.dense.dense_key)."""
    from robprune.config import parse_trial_config
    from robprune.trial.dense import dense_key

    seen: dict[str, dict[str, Any]] = {}
    for config in configs:
        key = dense_key(parse_trial_config(config))
        seen.setdefault(key, config)
    return list(seen.values())
