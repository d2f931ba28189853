"""Training: objectives (CE, PGD-AT, TRADES, MART, fast AT), schedules, the SGD loop."""

from robprune.training.losses import OBJECTIVES, AdversarialSetting, objective
from robprune.training.schedules import build_scheduler, lr_factor
from robprune.training.trainer import EpochStats, Trainer

__all__ = [
    "OBJECTIVES",
    "AdversarialSetting",
    "EpochStats",
    "Trainer",
    "build_scheduler",
    "lr_factor",
    "objective",
]
