"""Adversarial attacks in [0, 1] pixel space: FGSM, PGD (L-inf / L2), CW-L-inf, APGD-CE, APGD-T.

`pgd` and `fgsm` are plain functions for the training hot loop; `build_attack(name, ...)` gives
the configured `Attack` of an evaluation list; `robust_accuracy` evaluates one on tensors.
See `core` for the conventions every attack follows (eval mode, input-only gradients).
"""

from __future__ import annotations

from .apgd import apgd, apgd_targeted
from .core import NORMS, eval_mode, fgsm, input_grad, pgd, project, project_step
from .losses import LOSSES, ce_loss, cw_margin_loss, dlr_loss, dlr_targeted_loss, get_loss
from .registry import ATTACKS, Attack, build_attack, robust_accuracy, threat_attack

__all__ = [
    "ATTACKS",
    "LOSSES",
    "NORMS",
    "Attack",
    "apgd",
    "apgd_targeted",
    "build_attack",
    "ce_loss",
    "cw_margin_loss",
    "dlr_loss",
    "dlr_targeted_loss",
    "eval_mode",
    "fgsm",
    "get_loss",
    "input_grad",
    "pgd",
    "project",
    "project_step",
    "robust_accuracy",
    "threat_attack",
]
