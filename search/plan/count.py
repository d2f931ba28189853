"""What a validated spec makes: its trials, its dense models and its factor space (no Ray).

Counts come from the same functions the search runs with (`search.space.grid_configs`,
`dense_configs`), so the plan and the search cannot disagree. For the cost, optimize and random
searches are represented by a fixed-seed random draw of their space (the prior TPE starts from).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from robprune.config import TrialConfig, parse_trial_config, parse_trial_configs
from robprune.config.factors import condition_of
from search.spec.dists import Dist
from search.spec.grid import dense_configs, grid_configs, space_size
from search.spec.model import Spec
from search.spec.trial import concrete_config

__all__ = [
    "Counts",
    "DenseModel",
    "VariedFactor",
    "count_spec",
    "sample_configs",
    "describe_factor",
]

#: Configs drawn to stand for an optimize or random search's trials in the cost.
SAMPLE = 64
#: Where plans put the trials' cache_dir (never created; only names a path in configs).
PLAN_CACHE = "./.cache/robprune"


@dataclass(frozen=True)
class VariedFactor:
    """One varied leaf of the spec, as the plan lists it (`robprune plan`)."""

    path: str
    kind: str
    values: tuple[Any, ...]
    #: `governing in [levels]` for a leaf that applies only there
    only_when: str | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"path": self.path, "kind": self.kind, "values": list(self.values)}
        if self.only_when is not None:
            row["only_when"] = self.only_when
        return row


@dataclass(frozen=True)
class DenseModel:
    """One dense model the search needs, as the plan lists it: loaded or trained, and how."""

    dataset: str
    arch: str
    seed: int
    #: the dense checkpoint it loads; None when it is trained (`method` for `epochs`)
    checkpoint: str | None = None
    method: str | None = None
    epochs: int | None = None

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"dataset": self.dataset, "arch": self.arch, "seed": self.seed}
        if self.checkpoint is not None:
            row["checkpoint"] = self.checkpoint
        else:
            row.update(method=self.method, epochs=self.epochs)
        return row


@dataclass(frozen=True, kw_only=True)
class Counts:
    """`trials` is what the search runs (Tune trials, rows of trials.parquet)."""

    mode: str
    trials: int
    trials_why: str
    space_size: int | None
    """Distinct configurations of an all-choice space (None: a continuous parameter)."""
    dense: tuple[DenseModel, ...]
    factors: tuple[VariedFactor, ...]
    dense_configs: tuple[TrialConfig, ...]
    """One trial config per dense model (what the dense stage trains)."""


def describe_factor(spec: Spec, dist: Dist) -> VariedFactor:
    """One varied leaf: its path, distribution and when it applies."""
    rule = condition_of(dist.path)
    only_when = None
    if rule is not None:
        governing, allowed = rule
        only_when = f"{governing} in [{', '.join(allowed)}]"
    return VariedFactor(dist.path, dist.kind, tuple(dist.args), only_when)


def _dense_model(parsed: TrialConfig) -> DenseModel:
    dense = parsed.dense
    named = {"dataset": parsed.data.dataset, "arch": parsed.model.arch, "seed": parsed.seed}
    if dense.checkpoint is not None:
        return DenseModel(**named, checkpoint=dense.checkpoint)
    return DenseModel(**named, method=dense.method, epochs=dense.epochs)


def count_spec(spec: Spec) -> Counts:
    """Trials, dense models and factors of a validated spec."""
    size = space_size(spec)
    if spec.search.mode == "grid":
        trials = len(spec.grid)
        cells = trials // spec.search.seeds
        why = f"{cells} grid cells x {spec.search.seeds} seed(s)"
        left_out = len(spec.grid_repeats.repeats) if spec.search.dedupe else 0
        if left_out:
            why += f"; {left_out} more cell(s) resolve like another (search.dedupe)"
    else:
        trials = int(spec.search.num_samples)
        why = f"search.num_samples ({spec.search.mode}, sampler {spec.search.sampler})"
    dense = tuple(parse_trial_config(c) for c in dense_configs(spec, PLAN_CACHE))
    factors = tuple(describe_factor(spec, d) for d in spec.ordered_dists())
    return Counts(
        mode=spec.search.mode,
        trials=trials,
        trials_why=why,
        space_size=size,
        dense=tuple(_dense_model(c) for c in dense),
        factors=factors,
        dense_configs=dense,
    )


def _draw(dist: Dist, rng: random.Random) -> Any:
    if dist.kind == "choice":
        return rng.choice(dist.args)
    lo, hi = dist.args
    if dist.kind == "int":
        return rng.randint(int(lo), int(hi))
    if dist.kind == "loguniform":
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return rng.uniform(float(lo), float(hi))


def sample_configs(spec: Spec, n: int | None = None) -> list[TrialConfig]:
    """The trials' configs: every grid config, or `n` random draws of the space (seed 0)."""
    if spec.search.mode == "grid":
        return parse_trial_configs(grid_configs(spec, PLAN_CACHE))
    rng = random.Random(0)
    out = []
    for _ in range(n or SAMPLE):
        values: dict[str, Any] = {}
        for dist in spec.ordered_dists():
            if spec.applies(dist.path, values):
                values[dist.path] = _draw(dist, rng)
        out.append(parse_trial_config(concrete_config(spec, values, name=spec.name)))
    return out
