"""The contract every registered model follows, and channel-scaling helpers.

A model is `Normalize -> forward_features -> classifier`. `classifier` is the final `nn.Linear`
(registered last) and the stem conv is the first `nn.Conv2d` in `model.modules()`: the pruning
code keeps both dense. `unprunable_modules()` lists further modules whose output channels
Torch-Pruning must not remove (for example fused attention projections, whose output is split
into heads by a reshape the dependency graph cannot follow).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .normalize import Normalize

__all__ = [
    "ImageClassifier",
    "ImageSpec",
    "conv_bn_relu",
    "make_divisible",
    "pool_or_identity",
    "scale_channels",
]


@dataclass(frozen=True, kw_only=True)
class ImageSpec:
    """What a classifier is built for: its input images and its outputs (checked by
    `robprune.models.create_model`)."""

    num_classes: int
    """Number of outputs."""
    input_shape: tuple[int, int, int]
    """(C, H, W) of the input, pixels in [0, 1]."""
    mean: tuple[float, ...]
    """Per-channel mean the model normalises with (1 or C values)."""
    std: tuple[float, ...]
    """Per-channel standard deviation (as many values as `mean`)."""


class ImageClassifier(nn.Module):
    """Base class: pixel inputs in [0, 1], normalised inside the model."""

    classifier: nn.Linear
    features: nn.Module

    def __init__(self, spec: ImageSpec):
        super().__init__()
        self.normalize = Normalize(spec.mean, spec.std)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, C, H, W) -> pooled features (B, F); by default one
        `features` stack (models with named stages override it)."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(self.normalize(x)))

    def unprunable_modules(self) -> list[nn.Module]:
        """Modules to add to Torch-Pruning's `ignored_layers` (stem and classifier excluded)."""
        return []


def conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """3x3 conv (no bias: BN follows), BatchNorm, ReLU: the block of the small digits models."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


def scale_channels(channels: int, width: float, divisor: int = 1) -> int:
    """Round `channels * width` to a multiple of `divisor`, at least `divisor`."""
    return max(divisor, int(channels * width / divisor + 0.5) * divisor)


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet rounding: nearest multiple of `divisor`, never more than 10% below `value`."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def pool_or_identity(size: int, kernel: int = 2) -> tuple[nn.Module, int]:
    """A 2x2 max pool while the feature map is still at least 2 pixels, else a no-op.

    Lets VGG-style stacks built for 32x32 also build for 8x8 (digits) inputs.
    """
    if size >= kernel:
        return nn.MaxPool2d(kernel), size // kernel
    return nn.Identity(), size
