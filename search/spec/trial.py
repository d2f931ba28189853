"""From a spec and one assignment of its distribution leaves to a concrete trial config."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from robprune.config import parse_trial_config, parse_trial_configs
from robprune.config.typed_mapping import to_plain
from robprune.io.atomic import content_key
from search.spec.dists import Dist
from search.spec.model import Spec
from search.spec.paths import delete_path, set_path

__all__ = ["concrete_config", "config_key", "config_keys", "strip_dists", "trial_fixed_keys"]

#: Trial config keys that name or place a trial without changing what it computes.
_PLACING = ("name", "cache_dir")


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


def config_key(trial_config: Mapping[str, Any]) -> str:
    """Identity of a resolved trial configuration (seed included; name and cache left out):
    two configs that resolve alike (lamp under a per-layer rule is l2) have one key."""
    return _key(parse_trial_config(dict(trial_config)).to_dict())


def config_keys(trial_configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """`config_key` of many configs of one spec: sections are validated once and shared
    (`parse_trial_configs`), and each shared section is made plain once."""
    parsed = parse_trial_configs(trial_configs)
    plain: dict[int, Any] = {}  # id of a shared section -> its plain dict (all kept alive)
    keys = []
    for config in parsed:
        resolved: dict[str, Any] = {}
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if dataclasses.is_dataclass(value):
                if id(value) not in plain:
                    plain[id(value)] = to_plain(value)
                value = plain[id(value)]
            resolved[f.name] = to_plain(value)
        keys.append(_key(resolved))
    return keys


def _key(resolved: dict[str, Any]) -> str:
    resolved = {k: v for k, v in resolved.items() if k not in _PLACING}
    return content_key(resolved, length=32)
