"""A small CNN for the offline `digits` data set (1x8x8) and other small inputs.

Three conv-BN-ReLU layers and one pool: on 2 CPU cores it trains adversarially on digits in
seconds, which keeps the default demo and the tests fast.
"""

from __future__ import annotations

from torch import nn

from .base import ImageClassifier, ImageSpec, conv_bn_relu, pool_or_identity, scale_channels
from .registry import register_model

__all__ = ["SmallCNN", "small_cnn"]


class SmallCNN(ImageClassifier):
    """conv(32)-conv(64)-pool-conv(128)-global-avg-pool-linear, channels times `width`."""

    def __init__(self, spec: ImageSpec, *, width: float = 1.0):
        super().__init__(spec)
        c1, c2, c3 = (scale_channels(c, width) for c in (32, 64, 128))
        pool, _ = pool_or_identity(min(spec.input_shape[1:]))
        self.features = nn.Sequential(
            conv_bn_relu(spec.input_shape[0], c1),
            conv_bn_relu(c1, c2),
            pool,
            conv_bn_relu(c2, c3),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
        )
        self.classifier = nn.Linear(c3, spec.num_classes)


@register_model()
def small_cnn(spec: ImageSpec, width: float | None) -> SmallCNN:
    return SmallCNN(spec, width=width or 1.0)
