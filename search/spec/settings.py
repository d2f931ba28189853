"""The spec's `search:` and `resources:` sections as typed dataclasses.

The mapping machinery (`robprune.config.typed_mapping.build`) checks keys and types against the
annotations; the rules that tie fields together (a grid has no sampler, ASHA needs per-epoch
objectives) are checked here, each naming its key path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from robprune.config.typed_mapping import Interval, build, check_tree, require
from robprune.errors import ConfigError
from search.spec.dists import check_fixed

__all__ = [
    "EPOCH_METRICS",
    "MAX_TRIALS",
    "FINAL_METRICS",
    "MODES",
    "SAMPLERS",
    "SCHEDULERS",
    "Objective",
    "SchedulerSettings",
    "SearchSettings",
    "Resources",
    "parse_search",
    "parse_resources",
]

#: Reported after every fine-tuning epoch (validation subset): usable by ASHA and Optuna.
EPOCH_METRICS = ("robust_acc", "clean_acc", "train_loss")
#: Known only when a trial ends (structure of the pruned model): secondary objectives only.
FINAL_METRICS = ("params", "flops", "achieved_sparsity", "achieved_macs_sparsity")
Mode = Literal["optimize", "grid", "random"]
Sampler = Literal["tpe", "nsgaii", "random", "gp"]
SchedulerName = Literal["asha", "none"]
MODES: tuple[str, ...] = get_args(Mode)
SAMPLERS: tuple[str, ...] = get_args(Sampler)
SCHEDULERS: tuple[str, ...] = get_args(SchedulerName)
PositiveInt = Annotated[int, Interval(1)]
#: Trials one search may plan (grid cells x seeds, or num_samples), and replicates per cell.
MAX_TRIALS = 100_000
MAX_SEEDS = 10_000
NonNegativeInt = Annotated[int, Interval(0)]


@dataclass(frozen=True, kw_only=True)
class Objective:
    metric: str
    mode: str  # max | min

    def __str__(self) -> str:
        return f"{self.metric}:{self.mode}"


@dataclass(frozen=True, kw_only=True)
class SchedulerSettings:
    """`search.scheduler`: a name, or a mapping with ASHA's settings."""

    name: SchedulerName = "asha"
    grace_period: PositiveInt = 1
    reduction_factor: Annotated[int, Interval(2)] = 3


@dataclass(frozen=True, kw_only=True)
class Resources:
    """`resources:` what one trial (and one dense-model task) asks Ray for."""

    cpu: Annotated[float, Interval(0, lo_open=True)] = 1.0
    gpu: Annotated[float, Interval(0)] = 0.0

    def validate(self, path: str) -> None:
        require(
            self.gpu <= 1 or self.gpu == int(self.gpu),
            f"{path}.gpu",
            f"a fraction of a GPU must be below 1, got {self.gpu!r}",
        )


@dataclass(frozen=True, kw_only=True)
class _SearchSection:
    """`search:` exactly as written (before defaults that depend on the mode)."""

    mode: Mode = "optimize"
    objectives: tuple[str, ...] | str = ("robust_acc:max",)
    num_samples: Annotated[int, Interval(1, MAX_TRIALS)] = 20
    seeds: Annotated[int, Interval(1, MAX_SEEDS)] = 1
    scheduler: SchedulerSettings | str | None = None
    max_concurrent: Annotated[int | None, Interval(1)] = None
    sampler: Sampler | None = None
    sampler_seed: NonNegativeInt = 0
    max_failures: NonNegativeInt = 2
    dedupe: bool = True


@dataclass(frozen=True, kw_only=True)
class SearchSettings:
    mode: str = "optimize"
    objectives: tuple[Objective, ...] = (Objective(metric="robust_acc", mode="max"),)
    num_samples: int = 20
    seeds: int = 1
    scheduler: SchedulerSettings = SchedulerSettings()
    max_concurrent: int | None = None
    sampler: str = "tpe"
    sampler_seed: int = 0
    max_failures: int = 2
    dedupe: bool = True
    """A configuration already tried (seed included) is answered from it, not trained again;
    an exhausted all-choice space stops the search (docs/plan.md)."""

    @property
    def primary(self) -> Objective:
        return self.objectives[0]

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def modes(self) -> list[str]:
        return [o.mode for o in self.objectives]


def _parse_objectives(value: tuple[str, ...] | str, mode: str) -> tuple[Objective, ...]:
    path = "search.objectives"
    items = [value] if isinstance(value, str) else list(value)
    require(bool(items), path, "must be a list like [robust_acc:max], got []")
    allowed = EPOCH_METRICS + FINAL_METRICS
    out: list[Objective] = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        require(item.count(":") == 1, where, f"must be 'metric:max' or 'metric:min', got {item!r}")
        metric, direction = (s.strip() for s in item.split(":"))
        require(
            direction in ("max", "min"), where, f"direction must be max or min, got {direction!r}"
        )
        known = ", ".join(allowed)
        require(metric in allowed, where, f"unknown metric {metric!r}; allowed: {known}")
        require(all(o.metric != metric for o in out), where, f"{metric} is listed twice")
        out.append(Objective(metric=metric, mode=direction))
    if out[0].metric in FINAL_METRICS and mode != "grid":
        raise ConfigError(
            f"{path}[0]",
            f"the primary objective must be reported every epoch "
            f"({', '.join(EPOCH_METRICS)}); {out[0].metric} is only known at the "
            "end of a trial: list it second",
        )
    return tuple(out)


def _parse_scheduler(value: SchedulerSettings | str | None, mode: str) -> SchedulerSettings:
    if value is None:
        value = "none" if mode == "grid" else "asha"
    if isinstance(value, str):
        return build(SchedulerSettings, {"name": value}, "search.scheduler")
    check_tree(value, "search.scheduler")  # a nested section inside a union: check it here
    return value


def parse_search(raw: Any) -> SearchSettings:
    """Validate `search:`; unknown keys, wrong types and contradictions name their key path."""
    raw = {} if raw is None else raw
    require(isinstance(raw, Mapping), "search", f"must be a mapping, got {raw!r}")
    check_fixed(raw, "search")
    if isinstance(raw.get("scheduler"), str):  # a bare name is checked as scheduler.name
        require(
            raw["scheduler"] in SCHEDULERS,
            "search.scheduler",
            f"unknown {raw['scheduler']!r}; allowed: {', '.join(SCHEDULERS)}",
        )
    section = build(_SearchSection, raw, "search")
    mode = section.mode
    objectives = _parse_objectives(section.objectives, mode)
    if mode == "grid" and "num_samples" in raw:
        raise ConfigError(
            "search.num_samples",
            "grid mode runs the full factorial once per seed; set search.seeds for replicates "
            "instead",
        )
    if mode != "grid" and section.seeds != 1:
        raise ConfigError(
            "search.seeds",
            "replicates per cell apply to grid mode; in "
            f"{mode} mode vary the seed with seed: {{choice: [...]}}",
        )
    scheduler = _parse_scheduler(section.scheduler, mode)
    final_only = [o.metric for o in objectives if o.metric in FINAL_METRICS]
    if scheduler.name == "asha" and final_only:
        raise ConfigError(
            "search.scheduler",
            f"asha stops trials before their end, but {', '.join(final_only)} is only known "
            "at the end of a trial: use scheduler: none",
        )
    sampler = section.sampler or ("random" if mode == "random" else "tpe")
    if mode == "random" and sampler != "random":
        raise ConfigError(
            "search.sampler",
            f"random mode samples at random; got {sampler!r} "
            "(use mode: optimize for a model-based sampler)",
        )
    if mode == "grid" and section.sampler is not None:
        raise ConfigError("search.sampler", "grid mode enumerates the factorial: no sampler")
    if sampler == "gp" and len(objectives) > 1:
        raise ConfigError("search.sampler", "gp handles one objective; use tpe or nsgaii")
    return SearchSettings(
        mode=mode,
        objectives=objectives,
        num_samples=section.num_samples,
        seeds=section.seeds,
        scheduler=scheduler,
        max_concurrent=section.max_concurrent,
        sampler=sampler,
        sampler_seed=section.sampler_seed,
        max_failures=section.max_failures,
        dedupe=section.dedupe,
    )


def parse_resources(raw: Any) -> Resources:
    """Validate `resources:` (cpu > 0; gpu >= 0, a fraction only below one)."""
    raw = {} if raw is None else raw
    require(
        isinstance(raw, Mapping),
        "resources",
        f"must be a mapping like {{cpu: 1, gpu: 0}}, got {raw!r}",
    )
    check_fixed(raw, "resources")
    return build(Resources, raw, "resources")
