"""`digits_cnn`: the offline default model, deep enough for per-layer allocation to matter.

`small_cnn` has two prunable groups, too few for a ratio rule to show anything. This one keeps
the same cost on 8x8 digits (about 2.5 M multiply-accumulates) with five prunable groups of
different sizes and shapes: four convs of 24, 32, 48 and 96 channels and a hidden linear layer
of 64 units. The stem conv and the classifier stay dense, as for every model.
"""

from __future__ import annotations

from torch import nn

from .base import ImageClassifier, ImageSpec, conv_bn_relu, pool_or_identity, scale_channels
from .registry import register_model

__all__ = ["DigitsCNN", "digits_cnn"]

#: Output channels of the five convs (the first is the stem); then the hidden linear width.
_CONVS = (16, 24, 32, 48, 96)
_HIDDEN = 64


class DigitsCNN(ImageClassifier):
    """conv16-conv24-conv32-pool-conv48-conv96-GAP-fc64-linear, channels times `width`."""

    def __init__(self, spec: ImageSpec, *, width: float = 1.0):
        super().__init__(spec)
        c = [scale_channels(n, width) for n in _CONVS]
        hidden = scale_channels(_HIDDEN, width)
        pool, _ = pool_or_identity(min(spec.input_shape[1:]))
        self.features = nn.Sequential(
            conv_bn_relu(spec.input_shape[0], c[0]),
            conv_bn_relu(c[0], c[1]),
            conv_bn_relu(c[1], c[2]),
            pool,
            conv_bn_relu(c[2], c[3]),
            conv_bn_relu(c[3], c[4]),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(1),
            nn.Linear(c[4], hidden),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(hidden, spec.num_classes)


@register_model()
def digits_cnn(spec: ImageSpec, width: float | None) -> DigitsCNN:
    return DigitsCNN(spec, width=width or 1.0)
