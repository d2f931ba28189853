"""From a spec and one assignment of its distribution leaves to a concrete trial config."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from search.spec.dists import Dist
from search.spec.model import Spec
from search.spec.paths import delete_path, set_path

__all__ = ["concrete_config", "strip_dists", "trial_fixed_keys"]


def concrete_config(spec: Spec, values: Mapping[str, Any], **fixed: Any) -> dict[str, Any]:
    """The trial config for one assignment of distribution leaves.

    Leaves of parameters that do not apply are left out (the trial's default fills them), so
    nothing invented is attributed to them; `fixed` sets top-level keys (name, seed, cache_dir).
    """
    config = copy.deepcopy(strip_dists(spec.template))
    for dist in spec.dists:
        if dist.path in values:
            set_path(config, dist.path, copy.deepcopy(values[dist.path]))
        else:
            delete_path(config, dist.path)
    for key, value in fixed.items():
        set_path(config, key, value)
    return config


def strip_dists(node: Any) -> Any:
    if isinstance(node, Dist):
        return None
    if isinstance(node, dict):
        return {k: strip_dists(v) for k, v in node.items()}
    return node


def trial_fixed_keys(spec: Spec, cache_dir: str) -> dict[str, Any]:
    """Keys every trial of an experiment shares: its name and the shared dense cache."""
    fixed: dict[str, Any] = {"name": spec.name}
    if "cache_dir" not in spec.template:
        fixed["cache_dir"] = cache_dir
    return fixed
