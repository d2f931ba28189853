"""From a spec to trials in optimize mode: Optuna's define-by-run space (grid mode: grid.py).

Conditional parameters are sampled only when their option is chosen (TRADES beta only for
`trades`, the MRS temperature only for `mrs`), so Optuna learns nothing about a value that had
no effect, and the trial config leaves them out. `SpaceFunction` is picklable and lives in an
importable module: `Tuner.restore` unpickles it.
"""

from __future__ import annotations

import json
from typing import Any

from search.spec.dists import Dist
from search.spec.model import Spec
from search.spec.trial import concrete_config, trial_fixed_keys

__all__ = ["SpaceFunction", "suggest", "decode_choice"]

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
