"""The experiment spec (DESIGN §3): YAML with a distribution at any trial leaf.

Everything wrong with a spec is found here, before Ray starts or a directory is created, and
every message names the key path. Trial leaves are checked by the trial's own validator
(`robprune.config.parse_trial_config`) on concrete configs built from every option of every
distribution, so the spec accepts exactly what a trial accepts.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robprune.config import SPEC_ONLY_KEYS, apply_overrides, load_yaml, parse_trial_config
from robprune.errors import BadInput, ConfigError
from robprune.factors import CONDITIONS
from robprune.spec_yaml import dump_yaml
from robprune.typed_mapping import DISTRIBUTION_KEYS

__all__ = [
    "DIST_KINDS",
    "EPOCH_METRICS",
    "FINAL_METRICS",
    "CONDITIONS",
    "Dist",
    "Objective",
    "SearchSettings",
    "Spec",
    "load_spec",
    "parse_spec",
    "is_applicable",
    "is_dense_path",
    "concrete_config",
    "trial_defaults",
]

#: Leaf keys that mark a distribution (one definition, shared with `robprune run`).
DIST_KINDS = DISTRIBUTION_KEYS
#: Reported after every fine-tuning epoch (validation subset): usable by ASHA and Optuna.
EPOCH_METRICS = ("robust_acc", "clean_acc", "train_loss")
#: Known only when a trial ends (structure of the pruned model): secondary objectives only.
FINAL_METRICS = ("params", "flops", "achieved_sparsity")
MODES = ("optimize", "grid", "random")
SAMPLERS = ("tpe", "nsgaii", "random", "gp")
SCHEDULERS = ("asha", "none")
#: Top-level keys that configure the search, not a trial: fixed values only.
SPEC_KEYS = SPEC_ONLY_KEYS
#: Trial keys that must be fixed: they name or place things rather than vary the science.
FIXED_TRIAL_KEYS = ("name", "device", "cache_dir")
#: What the dense model depends on (robprune.dense.dense_key): it is trained before the trials,
#: so these may only take finitely many values.
_DENSE_PREFIXES = (
    "data.",
    "model.",
    "dense.",
    "threat.norm",
    "threat.epsilon",
    "threat.step_size",
    "threat.train_steps",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SEARCH_KEYS = (
    "mode",
    "objectives",
    "num_samples",
    "seeds",
    "scheduler",
    "max_concurrent",
    "sampler",
    "sampler_seed",
    "max_failures",
)
_SCHEDULER_KEYS = ("name", "grace_period", "reduction_factor")


@dataclass(frozen=True)
class Dist:
    """One distribution leaf: `kind` is choice|uniform|loguniform|int."""

    path: str
    kind: str
    args: tuple[Any, ...]

    def probes(self) -> list[Any]:
        """Values that exercise the trial validator: every option, or both ends."""
        return list(self.args)

    @property
    def first(self) -> Any:
        return self.args[0]

    def __str__(self) -> str:
        return f"{{{self.kind}: {list(self.args)}}}"


@dataclass(frozen=True)
class Objective:
    metric: str
    mode: str  # max | min

    def __str__(self) -> str:
        return f"{self.metric}:{self.mode}"


@dataclass(frozen=True)
class SearchSettings:
    mode: str = "optimize"
    objectives: tuple[Objective, ...] = (Objective("robust_acc", "max"),)
    num_samples: int = 20
    seeds: int = 1
    scheduler: str = "asha"
    grace_period: int = 1
    reduction_factor: int = 3
    max_concurrent: int | None = None
    sampler: str = "tpe"
    sampler_seed: int = 0
    max_failures: int = 0

    @property
    def primary(self) -> Objective:
        return self.objectives[0]

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def modes(self) -> list[str]:
        return [o.mode for o in self.objectives]


@dataclass
class Spec:
    """A validated spec. `template` is the trial part with `Dist` objects at varying leaves."""

    name: str
    storage: str
    resources: dict[str, float]
    search: SearchSettings
    template: dict[str, Any]
    dists: list[Dist]
    raw: dict[str, Any] = field(repr=False)

    @property
    def cpu(self) -> float:
        return self.resources["cpu"]

    @property
    def gpu(self) -> float:
        return self.resources["gpu"]

    def ordered_dists(self) -> list[Dist]:
        """Governing parameters first, so conditional ones can see their value."""
        governing = {gov for gov, _ in CONDITIONS.values()}
        return sorted(self.dists, key=lambda d: (d.path not in governing, self.dists.index(d)))

    def dist(self, path: str) -> Dist | None:
        return next((d for d in self.dists if d.path == path), None)

    def fixed_value(self, path: str) -> Any:
        """The value of a fixed leaf: from the spec, else the trial default."""
        node: Any = self.template
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return _get(trial_defaults(), path)
            node = node[part]
        return node

    def max_epochs(self) -> int:
        """The largest number of fine-tuning epochs a trial may run (ASHA's max_t)."""
        d = self.dist("finetune.epochs")
        if d is None:
            return max(1, int(self.fixed_value("finetune.epochs")))
        values = [int(v) for v in d.args if isinstance(v, int | float)]
        return max([1, *values])

    def to_yaml(self) -> str:
        return dump_yaml(self.raw)


def trial_defaults() -> dict[str, Any]:
    """The trial config's defaults as a plain dict (CONTRACTS.md), from the trial itself."""
    return parse_trial_config({}).to_dict()


def _get(tree: Mapping[str, Any], path: str, default: Any = None) -> Any:
    node: Any = tree
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def _delete(tree: dict[str, Any], path: str) -> None:
    """Remove a leaf, and the mappings that it leaves empty."""
    parts = path.split(".")
    chain: list[dict[str, Any]] = [tree]
    for part in parts[:-1]:
        child = chain[-1].get(part)
        if not isinstance(child, dict):
            return
        chain.append(child)
    chain[-1].pop(parts[-1], None)
    for depth in range(len(parts) - 1, 0, -1):
        if chain[depth]:
            break
        chain[depth - 1].pop(parts[depth - 1], None)


def is_applicable(path: str, values: Mapping[str, Any], spec: Spec) -> bool:
    """Whether a parameter exists given the values chosen so far (conditional parameters)."""
    for prefix, (governing, allowed) in CONDITIONS.items():
        if path == prefix or path.startswith(prefix):
            value = values[governing] if governing in values else spec.fixed_value(governing)
            return value in allowed
    return True


def is_dense_path(path: str) -> bool:
    """Whether a key path changes the dense model (trained once, before the trials)."""
    return path == "seed" or any(path == p or path.startswith(p) for p in _DENSE_PREFIXES)


def concrete_config(spec: Spec, values: Mapping[str, Any], **fixed: Any) -> dict[str, Any]:
    """The trial config for one assignment of distribution leaves.

    Leaves of parameters that do not apply are left out (the trial's default fills them), so
    nothing invented is attributed to them; `fixed` sets top-level keys (name, seed, cache_dir).
    """
    config = copy.deepcopy(_strip_dists(spec.template))
    for dist in spec.dists:
        if dist.path in values:
            _set(config, dist.path, copy.deepcopy(values[dist.path]))
        else:
            _delete(config, dist.path)
    for key, value in fixed.items():
        _set(config, key, value)
    return config


def _strip_dists(node: Any) -> Any:
    if isinstance(node, Dist):
        return None
    if isinstance(node, dict):
        return {k: _strip_dists(v) for k, v in node.items()}
    return node


# --------------------------------------------------------------------------- parsing


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_dist(path: str, node: Mapping[str, Any]) -> Dist:
    kinds = [k for k in node if k in DIST_KINDS]
    if len(node) != 1:
        raise ConfigError(
            path,
            f"a distribution has exactly one key ({', '.join(DIST_KINDS)}); "
            f"got {', '.join(map(str, node))}",
        )
    kind = kinds[0]
    args = node[kind]
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(path, f"choice needs a non-empty list of options, got {args!r}")
        for i, option in enumerate(args):
            if isinstance(option, Mapping) and set(option) & set(DIST_KINDS):
                raise ConfigError(f"{path}.choice[{i}]", "an option cannot be a distribution")
        seen: list[Any] = []
        for option in args:
            if option in seen:
                raise ConfigError(path, f"choice lists {option!r} twice")
            seen.append(option)
        return Dist(path, kind, tuple(args))
    if not isinstance(args, list) or len(args) != 2:
        raise ConfigError(path, f"{kind} needs [lo, hi], got {args!r}")
    lo, hi = args
    if kind == "int":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)):
            raise ConfigError(path, f"int needs two integers [lo, hi], got {args!r}")
    elif not (_is_number(lo) and _is_number(hi)):
        raise ConfigError(path, f"{kind} needs two numbers [lo, hi], got {args!r}")
    if lo >= hi:
        raise ConfigError(path, f"{kind} needs lo < hi, got [{lo}, {hi}]")
    if kind == "loguniform" and lo <= 0:
        raise ConfigError(path, f"loguniform needs 0 < lo < hi, got [{lo}, {hi}]")
    return Dist(path, kind, (lo, hi))


def _looks_like_dist(node: Any) -> bool:
    return isinstance(node, Mapping) and bool(set(node) & set(DIST_KINDS))


def _walk(node: Any, default: Any, path: str, dists: list[Dist]) -> Any:
    """Copy `node`, turning distributions into `Dist`; unknown keys are left to the trial."""
    if _looks_like_dist(node):
        dist = _parse_dist(path, node)
        dists.append(dist)
        return dist
    if isinstance(node, Mapping):
        if not isinstance(default, Mapping) and len(node) == 1 and default is not None:
            key = next(iter(node))
            raise ConfigError(
                path,
                f"unknown distribution {key!r}; use one of "
                f"{', '.join(DIST_KINDS)} (or a fixed value)",
            )
        out = {}
        for key, value in node.items():
            if not isinstance(key, str):
                raise ConfigError(f"{path}.{key}" if path else str(key), "keys must be strings")
            child = default.get(key) if isinstance(default, Mapping) else None
            out[key] = _walk(value, child, f"{path}.{key}" if path else key, dists)
        return out
    return copy.deepcopy(node)


def _check_fixed(node: Any, path: str) -> None:
    if _looks_like_dist(node):
        raise ConfigError(
            path, "must be a fixed value: distributions are only allowed in trial settings"
        )
    if isinstance(node, Mapping):
        for key, value in node.items():
            _check_fixed(value, f"{path}.{key}")


def _int(value: Any, path: str, lo: int, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < lo:
        raise ConfigError(path, f"must be an integer >= {lo}, got {value!r}")
    return value


def _parse_objectives(value: Any, mode: str) -> tuple[Objective, ...]:
    path = "search.objectives"
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ConfigError(path, f"must be a list like [robust_acc:max], got {value!r}")
    out: list[Objective] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(item, str) or item.count(":") != 1:
            raise ConfigError(where, f"must be 'metric:max' or 'metric:min', got {item!r}")
        metric, direction = (s.strip() for s in item.split(":"))
        if direction not in ("max", "min"):
            raise ConfigError(where, f"direction must be max or min, got {direction!r}")
        if metric not in EPOCH_METRICS + FINAL_METRICS:
            raise ConfigError(
                where,
                f"unknown metric {metric!r}; allowed: {', '.join(EPOCH_METRICS + FINAL_METRICS)}",
            )
        if any(o.metric == metric for o in out):
            raise ConfigError(where, f"{metric} is listed twice")
        out.append(Objective(metric, direction))
    if out[0].metric in FINAL_METRICS and mode != "grid":
        raise ConfigError(
            f"{path}[0]",
            f"the primary objective must be reported every epoch "
            f"({', '.join(EPOCH_METRICS)}); {out[0].metric} is only known at the "
            "end of a trial: list it second",
        )
    return tuple(out)


def _parse_scheduler(value: Any, mode: str) -> tuple[str, int, int]:
    if value is None:
        value = "none" if mode == "grid" else "asha"
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping):
        raise ConfigError("search.scheduler", f"must be asha, none or a mapping, got {value!r}")
    for key in value:
        if key not in _SCHEDULER_KEYS:
            raise ConfigError(
                f"search.scheduler.{key}", f"unknown key; allowed: {', '.join(_SCHEDULER_KEYS)}"
            )
    name = value.get("name", "asha")
    if name not in SCHEDULERS:
        raise ConfigError(
            "search.scheduler", f"unknown {name!r}; allowed: {', '.join(SCHEDULERS)}"
        )
    grace = _int(value.get("grace_period", 1), "search.scheduler.grace_period", 1)
    factor = _int(value.get("reduction_factor", 3), "search.scheduler.reduction_factor", 2)
    return name, int(grace), int(factor)


def _parse_search(raw: Any) -> SearchSettings:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("search", f"must be a mapping, got {raw!r}")
    _check_fixed(raw, "search")
    for key in raw:
        if key not in _SEARCH_KEYS:
            raise ConfigError(f"search.{key}", f"unknown key; allowed: {', '.join(_SEARCH_KEYS)}")
    mode = raw.get("mode", "optimize")
    if mode not in MODES:
        raise ConfigError("search.mode", f"unknown {mode!r}; allowed: {', '.join(MODES)}")
    objectives = _parse_objectives(raw.get("objectives", ["robust_acc:max"]), mode)
    if mode == "grid" and "num_samples" in raw:
        raise ConfigError(
            "search.num_samples",
            "grid mode runs the full factorial once per "
            "seed; set search.seeds for replicates instead",
        )
    num_samples = _int(raw.get("num_samples", 20), "search.num_samples", 1)
    seeds = _int(raw.get("seeds", 1), "search.seeds", 1)
    if mode != "grid" and seeds != 1:
        raise ConfigError(
            "search.seeds",
            "replicates per cell apply to grid mode; in "
            f"{mode} mode vary the seed with seed: {{choice: [...]}}",
        )
    scheduler, grace, factor = _parse_scheduler(raw.get("scheduler"), mode)
    if scheduler == "asha" and any(o.metric in FINAL_METRICS for o in objectives):
        raise ConfigError(
            "search.scheduler",
            "asha stops trials before their end, but "
            f"{', '.join(o.metric for o in objectives if o.metric in FINAL_METRICS)}"
            " is only known at the end of a trial: use scheduler: none",
        )
    max_concurrent = _int(raw.get("max_concurrent"), "search.max_concurrent", 1, allow_none=True)
    default_sampler = "random" if mode == "random" else "tpe"
    sampler = raw.get("sampler", default_sampler)
    if sampler not in SAMPLERS:
        raise ConfigError("search.sampler", f"unknown {sampler!r}; allowed: {', '.join(SAMPLERS)}")
    if mode == "random" and sampler != "random":
        raise ConfigError(
            "search.sampler",
            f"random mode samples at random; got {sampler!r} "
            "(use mode: optimize for a model-based sampler)",
        )
    if mode == "grid" and "sampler" in raw:
        raise ConfigError("search.sampler", "grid mode enumerates the factorial: no sampler")
    if sampler == "gp" and len(objectives) > 1:
        raise ConfigError("search.sampler", "gp handles one objective; use tpe or nsgaii")
    sampler_seed = _int(raw.get("sampler_seed", 0), "search.sampler_seed", 0)
    max_failures = _int(raw.get("max_failures", 0), "search.max_failures", 0)
    return SearchSettings(
        mode=mode,
        objectives=objectives,
        num_samples=int(num_samples),
        seeds=int(seeds),
        scheduler=scheduler,
        grace_period=grace,
        reduction_factor=factor,
        max_concurrent=max_concurrent,
        sampler=sampler,
        sampler_seed=int(sampler_seed),
        max_failures=int(max_failures),
    )


def _parse_resources(raw: Any) -> dict[str, float]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("resources", f"must be a mapping like {{cpu: 1, gpu: 0}}, got {raw!r}")
    _check_fixed(raw, "resources")
    for key in raw:
        if key not in ("cpu", "gpu"):
            raise ConfigError(f"resources.{key}", "unknown key; allowed: cpu, gpu")
    cpu, gpu = raw.get("cpu", 1), raw.get("gpu", 0)
    if not _is_number(cpu) or cpu <= 0:
        raise ConfigError("resources.cpu", f"must be a number > 0, got {cpu!r}")
    if not _is_number(gpu) or gpu < 0:
        raise ConfigError("resources.gpu", f"must be a number >= 0, got {gpu!r}")
    if gpu > 1 and float(gpu) != int(gpu):
        raise ConfigError("resources.gpu", f"a fraction of a GPU must be below 1, got {gpu!r}")
    return {"cpu": float(cpu), "gpu": float(gpu)}


def _validate_trial_leaves(template: dict[str, Any], dists: list[Dist]) -> None:
    """Run the trial validator on configs built from every option of every distribution."""
    base = {d.path: d.first for d in dists}

    def build(values: Mapping[str, Any]) -> dict[str, Any]:
        config = copy.deepcopy(_strip_dists(template))
        for path, value in values.items():
            _set(config, path, copy.deepcopy(value))
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
        top = dist.path.split(".")[0]
        if top in FIXED_TRIAL_KEYS:
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
    allowed = sorted(set(defaults) | set(SPEC_KEYS))
    for key in raw:
        if key not in allowed:
            raise ConfigError(str(key), f"unknown key; allowed: {', '.join(allowed)}")
    search = _parse_search(raw.get("search"))
    resources = _parse_resources(raw.get("resources"))
    if "storage" in raw:
        _check_fixed(raw["storage"], "storage")
    storage = storage if storage is not None else raw.get("storage", "./experiments")
    if not isinstance(storage, str) or not storage.strip():
        raise ConfigError("storage", f"must be a path or URI, got {storage!r}")
    if "name" in raw:
        _check_fixed(raw["name"], "name")
    exp_name = name if name is not None else raw.get("name", default_name)
    if not isinstance(exp_name, str) or not _NAME.match(exp_name):
        raise ConfigError(
            "name", f"must be letters, digits, '.', '_' or '-' (at most 128), got {exp_name!r}"
        )
    for key in FIXED_TRIAL_KEYS:
        if key in raw:
            _check_fixed(raw[key], key)

    trial_part = {k: v for k, v in raw.items() if k not in SPEC_KEYS}
    dists: list[Dist] = []
    template = _walk(trial_part, defaults, "", dists)
    _check_dists(dists, search.mode)
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
    _validate_trial_leaves(template, dists)

    resolved = dict(raw)
    resolved["name"] = exp_name
    resolved["storage"] = storage
    return Spec(
        name=exp_name,
        storage=storage,
        resources=resources,
        search=search,
        template=template,
        dists=dists,
        raw=resolved,
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
        _check_fixed(raw.get("name"), "name")
        if not isinstance(base, str) or not _NAME.match(base):
            raise ConfigError("name", f"must be letters, digits, '.', '_' or '-', got {base!r}")
        name = f"{base}-{time.strftime('%Y%m%d-%H%M%S')}" if timestamp else base
    return parse_spec(raw, name=name, storage=storage, default_name=base)
