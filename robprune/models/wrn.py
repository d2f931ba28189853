"""WideResNet-28-k (Zagoruyko & Komodakis 2016), the usual robustness baseline on CIFAR.

Pre-activation blocks, four per stage, stages of 16k, 32k, 64k channels (strides 1, 2, 2).
For `wrn28` the `width` argument is the widen factor k (default 10, fractions allowed);
the fixed-k aliases `wrn28_4` and `wrn28_10` read `width` as a multiplier on their k.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ImageClassifier, ImageSpec, scale_channels
from .registry import register_model

__all__ = ["WideBasicBlock", "WideResNet", "wrn28", "wrn28_4", "wrn28_10"]


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus a shortcut (1x1 conv when the shape changes).

    When the shape changes the shortcut reads the pre-activated input, as in the reference code.
    """

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.equal_in_out = cin == cout and stride == 1
        self.shortcut = (
            None if self.equal_in_out else nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(act))))
        if self.shortcut is None:
            return x + out
        return self.shortcut(act) + out


class WideResNet(ImageClassifier):
    """WRN-depth-k: stem conv3x3(16), three stages, BN-ReLU, global pool, linear."""

    def __init__(self, spec: ImageSpec, *, depth: int = 28, widen: float = 10.0):
        super().__init__(spec)
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(spec.input_shape[0], 16, 3, padding=1, bias=False)
        cin = 16
        stages: list[nn.Module] = []
        for base, stride in ((16, 1), (32, 2), (64, 2)):
            cout = scale_channels(base, widen)
            blocks = []
            for i in range(n):
                blocks.append(WideBasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = stages
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, spec.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        return torch.flatten(self.pool(self.relu(self.bn(x))), 1)


@register_model()
def wrn28(spec: ImageSpec, width: float | None) -> WideResNet:
    """WRN-28-k with k = `width` (default 10)."""
    return WideResNet(spec, depth=28, widen=width or 10.0)


@register_model()
def wrn28_4(spec: ImageSpec, width: float | None) -> WideResNet:
    """WRN-28-4 (5.8M parameters); `width` multiplies k."""
    return WideResNet(spec, depth=28, widen=4.0 * (width or 1.0))


@register_model()
def wrn28_10(spec: ImageSpec, width: float | None) -> WideResNet:
    """WRN-28-10 (36.5M parameters); `width` multiplies k."""
    return WideResNet(spec, depth=28, widen=10.0 * (width or 1.0))
