"""CIFAR-style ResNets (He et al. 2016 as used for CIFAR robustness work).

3x3 stride-1 stem and no max pool, so 32x32 inputs reach the last stage at 4x4; global average
pooling makes 64x64 (Tiny-ImageNet) and 8x8 (digits) inputs work with the same layers.
Residual sums are written `out = out + shortcut` (no in-place ops) so Torch-Pruning can trace
them, and every ReLU is its own module.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import ImageClassifier, ImageSpec, scale_channels
from .registry import register_model

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50"]


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), with a residual connection."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.shortcut(x))


class ResNet(ImageClassifier):
    """Stem conv3x3(64) + four stages (64, 128, 256, 512 planes; strides 1, 2, 2, 2)."""

    def __init__(
        self,
        spec: ImageSpec,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: tuple[int, int, int, int],
        *,
        width: float = 1.0,
    ):
        super().__init__(spec)
        stem = scale_channels(64, width)
        self.conv1 = nn.Conv2d(spec.input_shape[0], stem, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        cin = stem
        stages: list[nn.Module] = []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), num_blocks, strict=True)):
            planes = scale_channels(planes, width)
            layers: list[nn.Module] = []
            for j in range(blocks):
                layers.append(block(cin, planes, stride=2 if (i > 0 and j == 0) else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, spec.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.pool(x), 1)


@register_model()
def resnet18(spec: ImageSpec, width: float | None) -> ResNet:
    """ResNet-18 (11.2M parameters at width 1, 10 classes)."""
    return ResNet(spec, BasicBlock, (2, 2, 2, 2), width=width or 1.0)


@register_model()
def resnet34(spec: ImageSpec, width: float | None) -> ResNet:
    """ResNet-34 (21.3M parameters at width 1, 10 classes)."""
    return ResNet(spec, BasicBlock, (3, 4, 6, 3), width=width or 1.0)


@register_model()
def resnet50(spec: ImageSpec, width: float | None) -> ResNet:
    """ResNet-50 with bottlenecks (23.5M parameters at width 1, 10 classes)."""
    return ResNet(spec, Bottleneck, (3, 4, 6, 3), width=width or 1.0)
