"""Per-example attack losses: each maps (logits, labels) to a [B] tensor the attack maximises.

Per-example (not reduced) so that an attack can keep the best point of every example and sum
the losses for one input gradient: examples are independent in eval mode, so the sum's
gradient is each example's own gradient.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LOSSES",
    "LossFn",
    "ce_loss",
    "cw_margin_loss",
    "dlr_loss",
    "dlr_targeted_loss",
    "get_loss",
]

LossFn = Callable[[Tensor, Tensor], Tensor]
"""(logits [B, C], targets [B]) -> per-example loss [B] to maximise."""


def ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy per example (the PGD / APGD-CE objective)."""
    return F.cross_entropy(logits, y, reduction="none")


def cw_margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Carlini-Wagner margin `max_{j != y} z_j - z_y`: positive once the example is broken.

    Unclamped (kappa = infinity), so the gradient never vanishes; under sign steps the
    clamp of the original formulation would only stop broken examples from moving.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).amax(dim=1)
    return other - true


def _top(logits: Tensor, k: int) -> Tensor:
    """The k largest logits per row in descending order, repeating the smallest when C < k."""
    num_classes = logits.shape[1]
    top = logits.topk(min(k, num_classes), dim=1).values
    if num_classes < k:
        top = torch.cat([top, top[:, -1:].expand(-1, k - num_classes)], dim=1)
    return top


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Difference-of-logits ratio (Croce & Hein 2020), invariant to logit shift and scale.

    `-(z_y - max_{j != y} z_j) / (z_(1) - z_(3))` with z_(i) the i-th largest logit.
    """
    top = _top(logits, 3)
    true = logits.gather(1, y[:, None]).squeeze(1)
    y_is_top = (logits.argmax(dim=1) == y).to(logits.dtype)
    best_other = top[:, 1] * y_is_top + top[:, 0] * (1.0 - y_is_top)
    return -(true - best_other) / (top[:, 0] - top[:, 2] + 1e-12)


def dlr_targeted_loss(logits: Tensor, y: Tensor, y_target: Tensor) -> Tensor:
    """Targeted DLR of APGD-T: `-(z_y - z_t) / (z_(1) - (z_(3) + z_(4)) / 2)`."""
    top = _top(logits, 4)
    true = logits.gather(1, y[:, None]).squeeze(1)
    target = logits.gather(1, y_target[:, None]).squeeze(1)
    return -(true - target) / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


LOSSES: dict[str, LossFn] = {"ce": ce_loss, "cw": cw_margin_loss, "dlr": dlr_loss}


def get_loss(loss: str | LossFn) -> LossFn:
    """A loss by name (`ce`, `cw`, `dlr`) or a callable passed through unchanged."""
    if callable(loss):
        return loss
    try:
        return LOSSES[loss]
    except KeyError:
        raise ValueError(f"unknown attack loss {loss!r}; allowed: {', '.join(LOSSES)}") from None
