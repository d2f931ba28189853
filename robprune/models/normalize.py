"""Per-channel input normalisation as the first layer of every model.

Models take [0, 1] pixel tensors so that attacks (FGSM, PGD, AutoAttack) clip and step in pixel
space; the data pipeline therefore never normalises. `mean` and `std` are buffers: they follow
`.to(device)` and are part of `state_dict()`, but are not parameters, so neither the optimiser nor
Torch-Pruning touches them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Normalize"]


class Normalize(nn.Module):
    """`(x - mean) / std` per channel; one value broadcasts over all channels."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean_t = torch.as_tensor(tuple(mean), dtype=torch.float32).reshape(1, -1, 1, 1)
        std_t = torch.as_tensor(tuple(std), dtype=torch.float32).reshape(1, -1, 1, 1)
        if mean_t.numel() == 0 or mean_t.numel() != std_t.numel():
            raise ValueError(f"mean and std need the same non-zero length, got {mean}, {std}")
        if bool((std_t <= 0).any()):
            raise ValueError(f"std must be positive, got {std}")
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
