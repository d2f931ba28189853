"""The cost of a search: trial-hours and wall hours on N workers, and what drives them.

A pure function of a validated spec and per-image seconds (`Rates`): from a calibration on this
machine (`search.plan.calibrate`) or from `--epoch-seconds` given by hand. Each trial is costed
from its own config (grid: every cell; optimize/random: a fixed-seed draw of the space), at its
expected number of epochs under ASHA, and the trials are laid out on N workers in the order the
search starts them (greedy list scheduling) to give the wall time.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from robprune.config import TrialConfig
from robprune.config.typed_mapping import to_plain
from search.plan.asha import asha_epochs
from search.plan.overhead import FITTED
from search.plan.workload import (
    Stage,
    cached_work,
    dense_work,
    prunings,
    train_passes,
    trial_work,
)
from search.spec.model import Spec

__all__ = [
    "Rates",
    "Cost",
    "FewestCost",
    "OVERHEAD",
    "estimate_cost",
    "cost_key",
    "list_schedule",
    "hand_rates",
]

#: Fixed seconds that no image-pass count sees, fitted on three local searches of this machine
#: (examples/demo-search, digits-search and allocation-ablation, docs/plan.md): starting the
#: driver, Ray, the dense stage's tasks and Tune; the export at the end; and each fine-tuning
#: epoch's report and checkpoint. The driver's seconds per trial, one trial after another, are
#: `search.plan.overhead.FITTED`, fitted to bench_scale's recorded runs.
OVERHEAD = {"start": 20.0, "end": 5.0, "epoch": 0.6}
#: Trials laid out one by one for the wall time; a longer search repeats the same layout.
SCHEDULED = 10_000
#: Config paths that change what a trial computes; the others (seed, lr, ...) only change
#: the numbers, so configs equal on these share one cost.
_COSTLY = (
    "data.",
    "model.",
    "dense.",
    "threat.train_steps",
    "threat.eval_steps",
    "eval.",
    "prune.sparsity",
    "prune.ratio",
    "prune.criterion",
    "prune.mrs.estimator",
    "prune.mrs.num_examples",
    "prune.mrs.steps",
    "prune.mrs.reattack",
    "prune.record_mrs",
    "finetune.method",
    "finetune.epochs",
    "finetune.batch_size",
)


@dataclass(frozen=True, kw_only=True)
class Rates:
    """Seconds per image of one training step (`train(config, method, sparsity, batch)`), of one
    attack step or forward-backward pass (`attack(config, sparsity)`), and where they come
    from."""

    train: Callable[[TrialConfig, str, float, int], float]
    attack: Callable[[TrialConfig, float], float]
    source: str
    prune: Callable[[TrialConfig], float] = lambda config: 0.0
    """Seconds of one structured pruning of the config's network (measured; 0 by hand)."""
    devices: set[str] = field(default_factory=set)
    """Where the calibrations behind the rates ran (filled as they are read)."""


@dataclass(frozen=True, kw_only=True)
class FewestCost:
    """The cost with every stage whose work depends on the model at its other extreme: the
    strong response with APGD-CE breaking every image, so that APGD-T runs on none (the
    `Cost` counts APGD-T on every image). A search's measured cost lies nearer this the less
    robust its pruned models are (docs/plan.md)."""

    trial_seconds: float
    wall_seconds: float


@dataclass(frozen=True, kw_only=True)
class Cost:
    trials: int
    trial_seconds: float
    """All trials together."""
    dense_seconds: tuple[float, ...]
    workers: int
    wall_seconds: float
    source: str
    drivers: tuple[dict[str, Any], ...] = field(default=())
    fewest: FewestCost | None = None
    """The same at the other extreme of the model-dependent stages; None without one."""

    @property
    def trial_hours(self) -> float:
        """Worker-hours of the trials and the dense models together."""
        return (self.trial_seconds + sum(self.dense_seconds)) / 3600

    @property
    def mean_trial_seconds(self) -> float:
        return self.trial_seconds / max(1, self.trials)

    @property
    def wall_hours(self) -> float:
        return self.wall_seconds / 3600


def cost_key(config: TrialConfig) -> str:
    """What a trial's cost depends on (configs with equal keys cost the same)."""
    flat: dict[str, Any] = {}
    for prefix in _COSTLY:
        head = prefix.rstrip(".")
        value: Any = config
        for part in head.split("."):
            value = getattr(value, part)
        flat[head] = to_plain(value)
    return json.dumps(flat, sort_keys=True, default=str)


def hand_rates(epoch_seconds: float, configs: Sequence[TrialConfig]) -> Rates:
    """Rates from one number: seconds of one fine-tuning epoch (training and the per-epoch
    evaluation) of the first config that fine-tunes, else of one dense-training epoch; every
    other stage scales by its image-passes."""
    tuned = [c for c in configs if c.finetune.method != "none" and c.finetune.epochs]
    if tuned:
        reference, work = tuned[0], trial_work(tuned[0])
        passes = work.epoch_train.passes + work.epoch_eval.passes
        what = f"one {reference.finetune.method} fine-tuning epoch"
    else:
        reference, dense = configs[0], dense_work(configs[0])
        passes = (
            dense.images
            / max(1, reference.dense.epochs)
            * train_passes(dense.method, dense.train_steps)
        )
        what = f"one {reference.dense.method} dense-training epoch"
    per_pass = epoch_seconds / max(passes, 1.0)

    def train(config: TrialConfig, method: str, sparsity: float, batch: int) -> float:
        return per_pass * train_passes(method, config.threat.train_steps)

    return Rates(
        train=train,
        attack=lambda config, sparsity: per_pass,
        source=f"--epoch-seconds {epoch_seconds:g} ({what})",
    )


@dataclass(frozen=True, kw_only=True)
class _TrialCost:
    """One config's cost: seconds once and per fine-tuning epoch, with the stages behind."""

    epochs: int
    once_s: float
    epoch_s: float
    per_epoch: tuple[tuple[Stage, float, float], ...]
    once: tuple[tuple[Stage, float, float], ...]
    fewest_once_s: float
    """`once_s` with each bounded stage at its other extreme (`Stage.fewest`)."""

    def seconds(self, epochs: float, *, fewest: bool = False) -> float:
        return (self.fewest_once_s if fewest else self.once_s) + self.epoch_s * epochs


def _trial(config: TrialConfig, rates: Rates) -> _TrialCost:
    """Seconds of one trial of `config` (stage, seconds, image-passes per stage)."""
    work = trial_work(config)
    sparsity = config.prune.sparsity
    per_train = rates.train(config, work.method, sparsity, work.batch_size) if work.epochs else 0.0
    per_pass = rates.attack(config, sparsity)
    train, check = work.epoch_train, work.epoch_eval
    per_epoch = (
        (train, work.train_images * per_train, train.passes),
        (check, check.passes * per_pass, check.passes),
    )
    cuts = prunings(config)
    once = [
        (
            Stage(name="pruning", passes=0.0, why=f"{cuts} structured pruning(s) a trial"),
            cuts * rates.prune(config),
            0.0,
        )
    ]
    for stage in work.once:  # MRS runs on the dense network, the evaluation on the pruned one
        rate = rates.attack(config, 0.0) if stage.name.startswith("MRS") else per_pass
        once.append((stage, stage.passes * rate, stage.passes))
    return _TrialCost(
        epochs=work.epochs,
        once_s=sum(row[1] for row in once),
        fewest_once_s=sum(_at_fewest(stage, seconds) for stage, seconds, _ in once),
        epoch_s=OVERHEAD["epoch"] + sum(row[1] for row in per_epoch),
        per_epoch=per_epoch,
        once=tuple(once),
    )


def _at_fewest(stage: Stage, seconds: float) -> float:
    """A stage's seconds at its other extreme (`Stage.fewest`), at the same rate."""
    if stage.fewest is None or not stage.passes:
        return seconds
    return seconds * stage.fewest / stage.passes


def _epochs_run(spec: Spec, costs: Sequence[_TrialCost]) -> list[float]:
    """Epochs each trial runs: all of them, or as many as ASHA lets it (simulated)."""
    settings = spec.search.scheduler
    return asha_epochs(
        [c.epochs for c in costs],
        grace=settings.grace_period,
        reduction=settings.reduction_factor if settings.name == "asha" else 0,
        max_t=spec.max_epochs(),
    )


def _dense(config: TrialConfig, rates: Rates) -> tuple[float, tuple]:
    work = dense_work(config)
    batch = config.dense.batch_size
    train = rates.train(config, work.method, 0.0, batch) * work.images if work.images else 0.0
    seconds = train + work.evaluation * rates.attack(config, 0.0)
    passes = work.images * train_passes(work.method, work.train_steps) + work.evaluation
    return seconds, (Stage(name="dense", passes=passes, why=work.why), seconds, passes)


def _drivers(rows: list[tuple], scale: float) -> tuple[dict[str, Any], ...]:
    """Stages summed over the trials (and dense models): seconds, image-passes, share."""
    totals: dict[str, list] = {}
    for stage, seconds, passes in rows:
        entry = totals.setdefault(stage.name, [0.0, 0.0, stage.why])
        entry[0] += seconds
        entry[1] += passes
    trial_total = sum(v[0] for k, v in totals.items() if k != "dense") or 1.0
    out = []
    for name, (seconds, passes, why) in totals.items():
        factor = 1.0 if name == "dense" else scale
        out.append(
            {
                "stage": name,
                "seconds": seconds * factor,
                "image_passes": passes * factor,
                "share_of_trials": None if name == "dense" else seconds / trial_total,
                "example": why,
            }
        )
    return tuple(out)


def _cached_seconds(
    trials: Sequence[TrialConfig], laid: int, rates: Rates
) -> list[tuple[float, list[tuple]]]:
    """Per trial in start order (cycling through `trials`): seconds of the cached work it is
    the first to need (an MRS estimator on its dense model), and those rows for the drivers."""
    if not trials:
        return []
    work = [cached_work(config) for config in trials]
    seen: set[str] = set()
    out = []
    for i in range(laid):
        config, items = trials[i % len(trials)], work[i % len(trials)]
        seconds, rows = 0.0, []
        for item in items:
            if item.key in seen:
                continue
            seen.add(item.key)
            t = item.stage.passes * rates.attack(config, 0.0) + item.prunings * rates.prune(config)
            seconds += t
            rows.append((item.stage, t, item.stage.passes))
        out.append((seconds, rows))
    return out


def list_schedule(durations: Sequence[float], workers: int) -> float:
    """Makespan of jobs started in order on the first free of `workers` workers."""
    free = [0.0] * max(1, workers)
    for seconds in durations:
        start = heapq.heappop(free)
        heapq.heappush(free, start + seconds)
    return max(free) if durations else 0.0


def estimate_cost(
    spec: Spec,
    trials: Sequence[TrialConfig],
    dense: Sequence[TrialConfig],
    *,
    n_trials: int,
    workers: int,
    rates: Rates,
) -> Cost:
    """Seconds of `n_trials` trials (cycling through the representative `trials`) and of the
    dense models, and the wall time on `workers`."""
    memo: dict[str, _TrialCost] = {}
    keys = [cost_key(config) for config in trials]
    for config, key in zip(trials, keys, strict=True):
        if key not in memo:
            memo[key] = _trial(config, rates)
    laid = min(n_trials, SCHEDULED)  # beyond that, the layout repeats: scale it
    order = [memo[keys[i % len(trials)]] for i in range(laid)] if trials else []
    epochs = _epochs_run(spec, order)
    seconds = [c.seconds(e) for c, e in zip(order, epochs, strict=True)]
    fewest = [c.seconds(e, fewest=True) for c, e in zip(order, epochs, strict=True)]
    rows = [
        (st, s * e, p * e) for c, e in zip(order, epochs, strict=True) for st, s, p in c.per_epoch
    ]
    rows += [row for c in order for row in c.once]
    for i, (seconds_i, cached) in enumerate(_cached_seconds(trials, laid, rates)):
        seconds[i] += seconds_i
        fewest[i] += seconds_i
        rows += cached
    scale = n_trials / max(1, laid)
    total = sum(seconds) * scale
    dense_rows = [_dense(c, rates) for c in dense]
    dense_s = tuple(d[0] for d in dense_rows)
    drivers = _drivers(rows, scale)
    drivers += _drivers([d[1] for d in dense_rows], 1.0)
    driver = FITTED.driver_seconds(n_trials, workers)  # one trial after another
    fixed = OVERHEAD["start"] + list_schedule(dense_s, workers) + driver + OVERHEAD["end"]
    bounded = any(stage.fewest is not None for c in order for stage, _, _ in c.once)
    return Cost(
        trials=n_trials,
        trial_seconds=total,
        dense_seconds=dense_s,
        workers=workers,
        wall_seconds=fixed + list_schedule(seconds, workers) * scale,
        fewest=(
            FewestCost(
                trial_seconds=sum(fewest) * scale,
                wall_seconds=fixed + list_schedule(fewest, workers) * scale,
            )
            if bounded
            else None
        ),
        source=rates.source,
        drivers=drivers,
    )
