"""Random but learnable images of any shape, for benchmarks and tests without files.

Each class has a smooth prototype (a random 4x4 pattern per channel, upsampled); an example is
its class prototype plus pixel noise, so both linear models and CNNs can learn it. The images
depend only on `synthetic.seed` (default 0), not on the trial seed, so that trials with
different seeds see the same data set, as they do with the real ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from robprune.config.data import SyntheticConfig
from robprune.config.typed_mapping import build, check_tree, to_plain

from .splits import LoadRequest, SourceData, TensorSplit

__all__ = ["SYNTHETIC_DEFAULTS", "SyntheticConfig", "load_synthetic", "parse_synthetic"]

#: The defaults, as a plain mapping (one source: `robprune.config.SyntheticConfig`).
SYNTHETIC_DEFAULTS: dict[str, Any] = to_plain(SyntheticConfig())
_NOISE = 0.2
_CHUNK = 4096


def parse_synthetic(options: SyntheticConfig | Mapping[str, Any] | None) -> SyntheticConfig:
    """The `synthetic` argument as a checked record, defaults filled.

    The rules (sizes, shape, every class in train and validation) are the config's own, so a
    config that validates always loads; errors name `synthetic.<key>`, this loader's argument.
    """
    if isinstance(options, SyntheticConfig):
        check_tree(options, "synthetic")
        return options
    return build(SyntheticConfig, {} if options is None else options, "synthetic")


def _sample(
    prototypes: torch.Tensor, size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` balanced, shuffled examples, quantised to uint8 in chunks to bound memory."""
    k = prototypes.shape[0]
    y = (torch.arange(size) % k)[torch.randperm(size, generator=generator)]
    x = torch.empty((size, *prototypes.shape[1:]), dtype=torch.uint8)
    for start in range(0, size, _CHUNK):
        yc = y[start : start + _CHUNK]
        noise = torch.randn((len(yc), *prototypes.shape[1:]), generator=generator)
        pixels = (prototypes[yc] + _NOISE * noise).clamp_(0.0, 1.0)
        x[start : start + len(yc)] = pixels.mul_(255.0).round_().to(torch.uint8)
    return x, y


def load_synthetic(request: LoadRequest) -> SourceData:
    spec = parse_synthetic(request.synthetic)
    c, h, w = spec.shape
    generator = torch.Generator().manual_seed(spec.seed)
    low = torch.rand((spec.num_classes, c, 4, 4), generator=generator)
    smooth = F.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    prototypes = 0.25 + 0.5 * smooth
    train = _sample(prototypes, spec.train_size, generator)
    test = _sample(prototypes, spec.test_size, generator)
    return SourceData(
        train=TensorSplit(x=train[0], y=train[1]),
        test=TensorSplit(x=test[0], y=test[1]),
        num_classes=spec.num_classes,
        augment=False,
    )
