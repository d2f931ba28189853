"""The MRS section of a trial config (`prune.mrs`): how layer sensitivity is measured.

Module Robust Sensitivity is this project's reading of the paper (docs/mrs.md); each estimator
and its options are declared here, with the rules that tie them together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from robprune.config.names import BAND_SCALES, MRS_ESTIMATORS
from robprune.config.typed_mapping import Choice, Interval
from robprune.config.typed_mapping import require as _check

__all__ = ["ASCENT_STEPS", "MRSConfig"]

#: Gradient-ascent steps of the `ascent` estimator when the config names none.
ASCENT_STEPS = 5
_POSITIVE = Interval(0, lo_open=True)


@dataclass(frozen=True, kw_only=True)
class MRSConfig:
    """Module Robust Sensitivity: this project's reading of the paper (docs/mrs.md), pluggable."""

    estimator: Annotated[str, Choice(MRS_ESTIMATORS)] = "first_order"
    """first_order (eps*||theta||*||grad||, one backward), ascent (projected gradient ascent) or
    prune_damage (adversarial-loss rise when the group alone is pruned at the target ratio with
    the trial's criterion). Formulas and reasons: docs/mrs.md."""
    temperature: Annotated[float, _POSITIVE] = 1.0
    """mrs, mrs_zscore: large -> uniform, small -> prune low-MRS layers first."""
    band: Annotated[float, Interval(0, 0.5)] = 0.1
    """mrs_band: ratios stay within +-band of a common centre solved to the budget."""
    band_scale: Annotated[str, Choice(BAND_SCALES)] = "minmax"
    """mrs_band: move ratios by min-max-normalised MRS (minmax) or by rank (rank)."""
    epsilon: Annotated[float, Interval(0, 10, lo_open=True)] = 0.1
    """Relative radius of the weight perturbation ball, ||dtheta|| <= eps*||theta||."""
    steps: Annotated[int | None, Interval(1, 1000)] = None
    """Gradient-ascent steps: ascent only (default 5); an error with any other estimator."""
    num_examples: Annotated[int, Interval(1, 1_000_000)] = 256
    """Fixed PGD examples from the training split on which MRS is measured."""
    reattack: bool = False
    """prune_damage only: attack each pruned copy anew (after its BatchNorm recalibration) and
    measure its loss on its own examples against the dense model's on its own, instead of on the
    dense model's examples; one more calibration attack per prunable group (docs/mrs.md)."""

    def __post_init__(self) -> None:
        if self.estimator == "ascent" and self.steps is None:
            object.__setattr__(self, "steps", ASCENT_STEPS)  # resolved: written with results

    def validate(self, path: str) -> None:
        _check(
            self.steps is None or self.estimator == "ascent",
            f"{path}.steps",
            f"only the ascent estimator takes steps; {self.estimator} does not use them "
            "(remove steps, or set estimator: ascent)",
        )
        _check(
            not self.reattack or self.estimator == "prune_damage",
            f"{path}.reattack",
            f"only the prune_damage estimator re-attacks its pruned copies; {self.estimator} "
            "measures on the fixed examples (remove reattack, or set estimator: prune_damage)",
        )
