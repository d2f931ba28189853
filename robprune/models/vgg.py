"""VGG-style CNNs with batch norm, CIFAR variant: conv stacks, global pooling, one linear layer.

`vgg_small` is a 6-conv network for benchmarks on synthetic 3x32x32 data (about 13x cheaper than
ResNet-18). Max pools are dropped once the map is 1 pixel wide, so the same configs build for
8x8 inputs; global average pooling makes 64x64 inputs work too.
"""

from __future__ import annotations

from torch import nn

from .base import ImageClassifier, ImageSpec, pool_or_identity, scale_channels
from .registry import register_model

__all__ = ["VGG", "VGG_CONFIGS", "vgg11_bn", "vgg16_bn", "vgg_small"]

# Integers are conv output channels, "M" a 2x2 max pool.
VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg_small": [32, 32, "M", 64, 64, "M", 128, 128, "M"],
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [
        64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
        512, 512, 512, "M", 512, 512, 512, "M",
    ],
}  # fmt: skip


class VGG(ImageClassifier):
    """Conv3x3-BN-ReLU stacks from a config, global average pool, a single linear layer."""

    def __init__(
        self,
        spec: ImageSpec,
        config: list[int | str],
        *,
        width: float = 1.0,
    ):
        super().__init__(spec)
        layers: list[nn.Module] = []
        channels, size = spec.input_shape[0], min(spec.input_shape[1:])
        for item in config:
            if item == "M":
                pool, size = pool_or_identity(size)
                layers.append(pool)
            else:
                out = scale_channels(int(item), width)
                layers += [
                    nn.Conv2d(channels, out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(),
                ]
                channels = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, spec.num_classes)


@register_model()
def vgg_small(spec: ImageSpec, width: float | None) -> VGG:
    """Six convs (32-32-64-64-128-128): the cheap benchmark CNN."""
    return VGG(spec, VGG_CONFIGS["vgg_small"], width=width or 1.0)


@register_model()
def vgg11_bn(spec: ImageSpec, width: float | None) -> VGG:
    """VGG-11 with BN, CIFAR head (512 -> classes)."""
    return VGG(spec, VGG_CONFIGS["vgg11"], width=width or 1.0)


@register_model()
def vgg16_bn(spec: ImageSpec, width: float | None) -> VGG:
    """VGG-16 with BN, CIFAR head (512 -> classes)."""
    return VGG(spec, VGG_CONFIGS["vgg16"], width=width or 1.0)
