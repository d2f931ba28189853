"""A small CNN for the offline `digits` data set (1x8x8) and other small inputs.

Three conv-BN-ReLU layers and one pool: on 2 CPU cores it trains adversarially on digits in
seconds, which keeps the default demo and the tests fast.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ImageClassifier, conv_bn_relu, pool_or_identity, scale_channels
from .registry import register_model

__all__ = ["SmallCNN", "small_cnn"]


class SmallCNN(ImageClassifier):
    """conv(32)-conv(64)-pool-conv(128)-global-avg-pool-linear, channels times `width`."""

    def __init__(
        self,
        *,
        num_classes: int,
        input_shape: tuple[int, int, int],
        mean: tuple[float, ...],
        std: tuple[float, ...],
        width: float = 1.0,
    ):
        super().__init__(mean, std)
        c1, c2, c3 = (scale_channels(c, width) for c in (32, 64, 128))
        pool, _ = pool_or_identity(min(input_shape[1:]))
        self.features = nn.Sequential(
            conv_bn_relu(input_shape[0], c1),
            conv_bn_relu(c1, c2),
            pool,
            conv_bn_relu(c2, c3),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
        )
        self.classifier = nn.Linear(c3, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model()
def small_cnn(
    *,
    num_classes: int,
    input_shape: tuple[int, int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    width: float | None = None,
) -> SmallCNN:
    return SmallCNN(
        num_classes=num_classes, input_shape=input_shape, mean=mean, std=std, width=width or 1.0
    )
