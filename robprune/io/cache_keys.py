"""What each value cached beside a dense model depends on, as records; the cache name is a
content key of the record, so no input can be left out of the key by hand.

The computations in `robprune.trial.prepare` read their settings from these records only (the
model and the data come from the dense entry the value is cached beside), and the names hash
the whole record: change any input and the name changes
(tests/robprune/test_trial_pruning_settings.py changes each one). The dense entry's own key
(`robprune.trial.dense.dense_key`) covers the weights; a brought checkpoint's key is its bytes,
so everything computed from it carries the threat, the seed and the split here. Torch-free:
`robprune plan` reads the same names to cost a cached value once per dense model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from robprune.config import ASCENT_STEPS, TrialConfig
from robprune.io.atomic import content_key

__all__ = [
    "CALIBRATION_STREAM",
    "DenseCurveInputs",
    "DenseEvalInputs",
    "MRSInputs",
    "dense_curve_inputs",
    "dense_eval_inputs",
    "mrs_inputs",
]

#: Offset of the calibration examples' seed from the trial seed.
CALIBRATION_STREAM = 7919
#: Bumped when a computation changes in a way its inputs do not show.
_VERSION = 2


def _threat(config: TrialConfig) -> dict[str, Any]:
    t = config.threat
    return {
        "norm": t.norm,
        "epsilon": config.epsilon,
        "step_size": config.step_size,
        "train_steps": t.train_steps,
        "eval_steps": t.eval_steps,
    }


def _split(config: TrialConfig) -> dict[str, Any]:
    """What decides which examples are the train, validation and test splits."""
    data = config.data
    return {
        "val_source": data.val_source,
        "val_fraction": data.val_fraction,
        "train_limit": data.train_limit,
        "test_limit": config.eval.test_limit,
        "subset_draw": "stratified-1",
    }


@dataclass(frozen=True, kw_only=True)
class _Keyed:
    #: Fields added after names were written, left out of the name while unset (None or
    #: false), so those names still find their values.
    _LATER: ClassVar[tuple[str, ...]] = ()

    def name(self) -> str:
        kind = type(self).__name__.removesuffix("Inputs").lower()
        fields = dataclasses.asdict(self)
        payload = {
            "version": _VERSION,
            **{k: v for k, v in fields.items() if k not in self._LATER or v},
        }
        return f"{kind}-{content_key(payload, length=24)}"


@dataclass(frozen=True, kw_only=True)
class MRSInputs(_Keyed):
    """One MRS estimator's per-layer values for one dense model."""

    estimator: str
    seed: int
    """Seeds the calibration examples (seed + CALIBRATION_STREAM) and the random criterion."""
    num_examples: int
    threat: dict[str, Any]
    """The PGD that makes the calibration examples (norm, epsilon, step, steps)."""
    split: dict[str, Any]
    """The training split the calibration examples are drawn from."""
    weight_epsilon: float | None = None
    """first_order, ascent: the relative weight-ball radius."""
    steps: int | None = None
    """ascent: gradient-ascent steps."""
    criterion: str | None = None
    """prune_damage: the trial's criterion, budget and cap decide the probe ratio."""
    sparsity: float | None = None
    budget: str | None = None
    max_layer_ratio: float | None = None
    bn_recalibration: int | None = None
    """prune_damage: recalibration batches per pruned copy, and their batch size."""
    bn_batch_size: int | None = None
    reattack: bool | None = None
    """prune_damage: each pruned copy is scored on examples made against itself."""

    _LATER = ("reattack",)


def mrs_inputs(config: TrialConfig, estimator: str) -> MRSInputs:
    """Everything `estimator`'s values depend on in this trial (besides the dense weights)."""
    prune, mrs = config.prune, config.prune.mrs
    common: dict[str, Any] = {
        "estimator": estimator,
        "seed": config.seed,
        "num_examples": mrs.num_examples,
        "threat": _threat(config),
        "split": _split(config),
    }
    if estimator == "prune_damage":
        return MRSInputs(
            **common,
            criterion=prune.criterion,
            sparsity=prune.sparsity,
            budget=prune.budget,
            max_layer_ratio=prune.max_layer_ratio,
            bn_recalibration=prune.bn_recalibration,
            bn_batch_size=config.finetune.batch_size if prune.bn_recalibration else None,
            reattack=mrs.reattack,
        )
    # the config keeps mrs.steps for the rule's own ascent; a recorded ascent uses the default
    steps = (mrs.steps or ASCENT_STEPS) if estimator == "ascent" else None
    return MRSInputs(**common, weight_epsilon=mrs.epsilon, steps=steps)


@dataclass(frozen=True, kw_only=True)
class DenseEvalInputs(_Keyed):
    """The dense model's clean and primary-attack accuracy on the test split."""

    primary: str
    threat: dict[str, Any]
    l2_epsilon: float
    split: dict[str, Any]
    test_size: int


def dense_eval_inputs(config: TrialConfig, test_size: int) -> DenseEvalInputs:
    return DenseEvalInputs(
        primary=config.eval.primary,
        threat=_threat(config),
        l2_epsilon=config.eval.l2_epsilon,
        split=_split(config),
        test_size=test_size,
    )


@dataclass(frozen=True, kw_only=True)
class DenseCurveInputs(_Keyed):
    """The dense model's security curve (the finalists' curves are drawn beside it)."""

    threat: dict[str, Any]
    split: dict[str, Any]
    examples: int
    factors: tuple[float, ...]
    seed: int


def dense_curve_inputs(
    config: TrialConfig, examples: int, factors: tuple[float, ...]
) -> DenseCurveInputs:
    return DenseCurveInputs(
        threat=_threat(config),
        split={**_split(config), "test_limit": None},  # finalists use the full test split
        examples=examples,
        factors=tuple(factors),
        seed=config.seed,
    )
