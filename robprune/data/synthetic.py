"""Random but learnable images of any shape, for benchmarks and tests without files.

Each class has a smooth prototype (a random 4x4 pattern per channel, upsampled); an example is
its class prototype plus pixel noise, so both linear models and CNNs can learn it. The images
depend only on `synthetic.seed` (default 0), not on the trial seed, so that trials with
different seeds see the same data set, as they do with the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .splits import LoadRequest, SourceData, TensorSplit

__all__ = ["SYNTHETIC_DEFAULTS", "SyntheticSpec", "load_synthetic", "parse_synthetic"]

SYNTHETIC_DEFAULTS: dict[str, Any] = {
    "shape": [3, 32, 32],
    "num_classes": 10,
    "train_size": 512,
    "test_size": 256,
    "seed": 0,
}
_NOISE = 0.2
_CHUNK = 4096


@dataclass(frozen=True)
class SyntheticSpec:
    shape: tuple[int, int, int]
    num_classes: int
    train_size: int
    test_size: int
    seed: int


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_synthetic(options: dict | None) -> SyntheticSpec:
    """Validate `data.synthetic`, filling defaults; errors name the key path."""
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise ConfigError("data.synthetic", f"expected a mapping, got {type(options).__name__}")
    unknown = sorted(set(options) - set(SYNTHETIC_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"data.synthetic.{unknown[0]}",
            f"unknown key; allowed: {', '.join(SYNTHETIC_DEFAULTS)}",
        )
    merged = {**SYNTHETIC_DEFAULTS, **options}
    shape = merged["shape"]
    if (
        not isinstance(shape, list | tuple)
        or len(shape) != 3
        or not all(_is_int(s) and s > 0 for s in shape)
    ):
        raise ConfigError(
            "data.synthetic.shape", f"expected three positive integers [C, H, W], got {shape!r}"
        )
    for key, low in (("num_classes", 2), ("test_size", 1), ("seed", 0)):
        if not _is_int(merged[key]) or merged[key] < low:
            raise ConfigError(
                f"data.synthetic.{key}", f"expected an integer >= {low}, got {merged[key]!r}"
            )
    need = 2 * merged["num_classes"]
    if not _is_int(merged["train_size"]) or merged["train_size"] < need:
        raise ConfigError(
            "data.synthetic.train_size",
            f"expected an integer >= 2 * num_classes = {need} (train and validation need "
            f"every class), got {merged['train_size']!r}",
        )
    return SyntheticSpec(
        shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        num_classes=merged["num_classes"],
        train_size=merged["train_size"],
        test_size=merged["test_size"],
        seed=merged["seed"],
    )


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
        train=TensorSplit(*train),
        test=TensorSplit(*test),
        num_classes=spec.num_classes,
        augment=False,
    )
