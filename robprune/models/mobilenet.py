"""MobileNetV2 (Sandler et al. 2018), CIFAR variant.

Stride 1 in the stem and in the second stage (ImageNet uses 2 and 2), so 32x32 inputs end at
4x4. Depthwise convs are `groups == channels`; Torch-Pruning prunes them together with the
expanding 1x1 conv that feeds them.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ImageClassifier, ImageSpec, make_divisible
from .registry import register_model

__all__ = ["InvertedResidual", "MobileNetV2", "mobilenetv2"]

# (expansion t, output channels c, blocks n, first stride s); CIFAR strides.
_CONFIG: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list:
    return [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(),
    ]


class InvertedResidual(nn.Module):
    """1x1 expand, 3x3 depthwise, 1x1 linear projection; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += _conv_bn_act(cin, hidden, 1)
        layers += _conv_bn_act(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(ImageClassifier):
    """Stem conv3x3(32), 17 inverted residual blocks, conv1x1(1280), pool, linear."""

    def __init__(self, spec: ImageSpec, *, width: float = 1.0):
        super().__init__(spec)
        cin = make_divisible(32 * width)
        last = make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = _conv_bn_act(spec.input_shape[0], cin, 3)
        for t, c, n, s in _CONFIG:
            cout = make_divisible(c * width)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers += _conv_bn_act(cin, last, 1)
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(last, spec.num_classes)


@register_model()
def mobilenetv2(spec: ImageSpec, width: float | None) -> MobileNetV2:
    """MobileNetV2 for 32x32 inputs (2.2M parameters at width 1, 10 classes)."""
    return MobileNetV2(spec, width=width or 1.0)
