"""BatchNorm recalibration after pruning (AdaBN, Li et al. 2016; EagleEye, Li et al. 2020).

Removing channels changes what every later BatchNorm sees, so the running statistics kept from
the dense model no longer describe its inputs: a pruned model evaluated as it comes out of
Torch-Pruning measures that mismatch as much as the lost capacity. Recalibration resets the
running statistics and re-estimates them as a plain average (momentum None) over a few clean
training batches, forward passes only: no weight changes.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = ["recalibrate_bn"]


def recalibrate_bn(model: nn.Module, batches: Iterable[Tensor], *, num_batches: int) -> int:
    """Re-estimate every BatchNorm's running statistics on up to `num_batches` input batches.

    Only the BatchNorm layers run in train mode (dropout and the rest stay as they were); each
    module's mode and momentum come back afterwards. Returns the batches used (0: no
    BatchNorm, or `num_batches` is 0).
    """
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if not norms or num_batches <= 0:
        return 0
    modes = [(m, m.training) for m in model.modules()]
    momenta = [(m, m.momentum) for m in norms]
    used = 0
    try:
        model.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches seen
            m.train()
        with torch.no_grad():
            for x in batches:
                if used >= num_batches:
                    break
                model(x)
                used += 1
    finally:
        for m, momentum in momenta:
            m.momentum = momentum
        for m, flag in modes:
            m.training = flag
    return used
