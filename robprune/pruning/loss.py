"""The adversarial loss on fixed calibration examples: what MRS, Taylor and Hessian measure."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["adversarial_loss"]


def adversarial_loss(
    model: nn.Module, x_adv: Tensor, y: Tensor, *, batch_size: int = 256, backward: bool = False
) -> float:
    """Mean cross-entropy over the fixed examples; with `backward`, gradients accumulate."""
    total = 0.0
    n = x_adv.shape[0]
    for start in range(0, n, batch_size):
        xb, yb = x_adv[start : start + batch_size], y[start : start + batch_size]
        loss = F.cross_entropy(model(xb), yb, reduction="sum")
        if backward:
            (loss / n).backward()
        total += loss.item()
    return total / n
