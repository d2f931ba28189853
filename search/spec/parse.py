"""The experiment spec (docs/architecture.md): YAML with a distribution at any trial leaf.

Everything wrong with a spec is found here, before Ray starts or a directory is created, and
every message names the key path. Trial leaves are checked by the trial's own validator
(`robprune.config.parse_trial_config`) on concrete configs built from every option of every
distribution, so the spec accepts exactly what a trial accepts. The `Spec` record lives in
`search.spec.model`, distributions in `search.spec.dists`, the search and resources sections
in `search.spec.settings`, conditional parameters in `search.spec.conditions`.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from robprune.config import SPEC_ONLY_KEYS, apply_overrides, load_yaml, parse_trial_config
from robprune.errors import BadInput, ConfigError
from search.finalists.rules import check_spec
from search.spec.conditions import is_dense_path
from search.spec.dists import Dist, check_fixed, walk
from search.spec.grid import count_cells, grid_repeats, grid_trials
from search.spec.model import FIXED_TRIAL_KEYS, Spec, trial_defaults
from search.spec.paths import set_path
from search.spec.settings import MAX_TRIALS, parse_resources, parse_search
from search.spec.trial import strip_dists

__all__ = ["load_spec", "parse_spec"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _validate_trial_leaves(template: dict[str, Any], dists: list[Dist]) -> None:
    """Run the trial validator on configs built from every option of every distribution."""
    base = {d.path: d.first for d in dists}

    def build(values: Mapping[str, Any]) -> dict[str, Any]:
        config = copy.deepcopy(strip_dists(template))
        for path, value in values.items():
            set_path(config, path, copy.deepcopy(value))
        return config

    parse_trial_config(build(base))
    for dist in dists:
        for value in dist.probes():
            try:
                parse_trial_config(build({**base, dist.path: value}))
            except ConfigError as exc:
                message = str(exc)
                if exc.path and message.startswith(f"{exc.path}: "):
                    message = message[len(exc.path) + 2 :]
                raise ConfigError(
                    exc.path, f"{message} (from {dist.path}: {dist}, option {value!r})"
                ) from None


def _check_dists(dists: list[Dist], mode: str) -> None:
    for dist in dists:
        if dist.path.split(".")[0] in FIXED_TRIAL_KEYS:
            raise ConfigError(
                dist.path,
                "must be a fixed value: distributions are only allowed in trial settings",
            )
        dense = is_dense_path(dist.path)
        if dist.kind != "choice" and (mode == "grid" or dense):
            why = (
                "grid mode crosses finite choices"
                if mode == "grid"
                else "dense models are trained before the trials, so what they depend on must "
                "take finitely many values"
            )
            raise ConfigError(
                dist.path, f"{dist.kind} is not allowed here ({why}); use {{choice: [...]}}"
            )


def _check_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            "name", f"must be letters, digits, '.', '_' or '-' (at most 128), got {value!r}"
        )
    return value


def parse_spec(
    raw: Mapping[str, Any],
    *,
    name: str | None = None,
    storage: str | None = None,
    default_name: str = "search",
) -> Spec:
    """Validate a spec mapping; `name`/`storage` (from the command line) override the file."""
    if not isinstance(raw, Mapping):
        raise BadInput("spec must be a YAML mapping at top level")
    raw = copy.deepcopy(dict(raw))
    defaults = trial_defaults()
    allowed = sorted(set(defaults) | set(SPEC_ONLY_KEYS))
    for key in raw:
        if key not in allowed:
            raise ConfigError(str(key), f"unknown key; allowed: {', '.join(allowed)}")
    search = parse_search(raw.get("search"))
    resources = parse_resources(raw.get("resources"))
    if "storage" in raw:
        check_fixed(raw["storage"], "storage")
    storage = storage if storage is not None else raw.get("storage", "./experiments")
    if not isinstance(storage, str) or not storage.strip():
        raise ConfigError("storage", f"must be a path or URI, got {storage!r}")
    for key in FIXED_TRIAL_KEYS:
        if key in raw:
            check_fixed(raw[key], key)
    exp_name = _check_name(name if name is not None else raw.get("name", default_name))

    trial_part = {k: v for k, v in raw.items() if k not in SPEC_ONLY_KEYS}
    dists: list[Dist] = []
    template = walk(trial_part, defaults, "", dists)
    _check_dists(dists, search.mode)
    _validate_trial_leaves(template, dists)  # a misspelt key is named before what it causes
    if search.mode == "optimize" and not dists:
        raise ConfigError(
            "search.mode",
            "optimize needs at least one distribution in the "
            "spec; use mode: grid to repeat a fixed config over seeds",
        )
    if search.mode == "grid" and search.seeds > 1 and any(d.path == "seed" for d in dists):
        raise ConfigError(
            "seed", "a choice of seeds and search.seeds > 1 both set replicates; use one of them"
        )
    spec = Spec(
        name=exp_name,
        storage=storage,
        resources=resources,
        search=search,
        template=template,
        dists=dists,
        raw={**raw, "name": exp_name, "storage": storage},
    )
    _check_grid_size(spec)
    if search.mode == "grid":  # the one place the grid is built
        spec.grid_repeats = grid_repeats(spec)
        spec.grid = grid_trials(spec)
    check_spec(spec)  # eval.autoattack/finalists fixed, K fits the planned trials
    return spec


def _check_grid_size(spec: Spec) -> None:
    """A grid is counted, never enumerated, before it is refused for its size."""
    if spec.search.mode != "grid":
        return
    cells = count_cells(spec)
    if cells * spec.search.seeds > MAX_TRIALS:
        raise ConfigError(
            "search",
            f"the grid has {cells} cells x {spec.search.seeds} seed(s) = "
            f"{cells * spec.search.seeds} trials; at most {MAX_TRIALS} (fewer choices, or "
            "mode: optimize)",
        )


def load_spec(
    path: str | Path,
    overrides: Iterable[str] = (),
    *,
    name: str | None = None,
    storage: str | None = None,
    timestamp: bool = True,
) -> Spec:
    """Read, override and validate a spec file; the experiment name gets a time suffix."""
    raw = apply_overrides(load_yaml(path), list(overrides))
    base = raw.get("name") if isinstance(raw.get("name"), str) else Path(path).stem
    if name is None:
        check_fixed(raw.get("name"), "name")
        _check_name(base)
        name = f"{base}-{time.strftime('%Y%m%d-%H%M%S')}" if timestamp else base
    return parse_spec(raw, name=name, storage=storage, default_name=base)
