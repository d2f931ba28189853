"""The `threat` section of the trial config and the threat model it resolves to, torch-free
(re-exported by `robprune.config`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from robprune.config.names import NORMS
from robprune.config.typed_mapping import Choice, Interval

__all__ = ["ResolvedThreat", "ThreatConfig", "threat_defaults"]


def threat_defaults(dataset: str) -> tuple[float, float]:
    """(epsilon, PGD step size) per data set: 8/255 and 2/255 where pixels are 8-bit images.

    Digits are 8x8 with 17 grey levels: eps 0.1 (1.6 levels) is strong but not trivial.
    """
    if dataset == "digits":
        return 0.1, 0.025
    return 8 / 255, 2 / 255


@dataclass(frozen=True, kw_only=True)
class ThreatConfig:
    norm: Annotated[str, Choice(NORMS)] = "linf"
    """Threat-model norm for training and the primary evaluation."""
    epsilon: Annotated[float | None, Interval(0, 10, lo_open=True)] = None
    """Perturbation budget in [0,1] pixel units; None is the data set's default."""
    step_size: Annotated[float | None, Interval(0, 10, lo_open=True)] = None
    """Step of PGD and CW, training and evaluation alike; None is the data set's default
    (eps/4). FGSM always steps the full epsilon; APGD runs its own step schedule."""
    train_steps: Annotated[int, Interval(1, 1000)] = 10
    """PGD steps when generating training examples (pgd_at, trades, mart, MRS)."""
    eval_steps: Annotated[int, Interval(1, 10_000)] = 20
    """PGD steps of the `pgd_acc` column (`pgd{eval_steps}` in the threat norm; evaluated
    even when `eval.attacks` does not list it)."""


@dataclass(frozen=True, kw_only=True)
class ResolvedThreat:
    """The threat model of one trial with the data set's defaults filled in: what every attack,
    training objective and evaluation of the trial reads (`TrialConfig.resolved_threat`)."""

    norm: str
    """linf | l2."""
    epsilon: float
    """Perturbation budget in [0, 1] pixel units."""
    step_size: float | None
    """PGD/CW step; None lets each attack use its own default (epsilon / 4)."""
    train_steps: int = 10
    """PGD steps when generating training and MRS examples."""
    eval_steps: int = 20
    """PGD steps of the `pgd_acc` column."""
    l2_epsilon: float | None = None
    """Radius of `pgdK_l2` attacks under an L-inf threat (`eval.l2_epsilon`)."""
