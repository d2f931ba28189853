"""Split containers and the deterministic, stratified index arithmetic behind them.

Images stay uint8 in memory (CIFAR's train set is 150 MB that way, 600 MB as float32) and are
converted per batch; digits stay float32 because their 0..16 scale is not a byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "DataSplits",
    "LoadRequest",
    "SourceData",
    "TensorSplit",
    "channel_mean_std",
    "stratified_split",
]


@dataclass(frozen=True, eq=False, kw_only=True)
class TensorSplit:
    """Images `x` [N,C,H,W] (uint8 0..255, or float32 in [0,1]) and labels `y` (int64) [N]."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dtype not in (torch.uint8, torch.float32):
            raise TypeError(f"TensorSplit.x must be uint8 or float32, got {self.x.dtype}")
        if self.x.ndim != 4:
            raise ValueError(f"TensorSplit.x must be [N,C,H,W], got shape {tuple(self.x.shape)}")
        if self.y.dtype != torch.int64 or self.y.ndim != 1:
            raise TypeError(f"TensorSplit.y must be 1-D int64, got {self.y.dtype} {self.y.ndim}-D")
        if len(self.x) != len(self.y):
            raise ValueError(f"TensorSplit has {len(self.x)} images but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: torch.Tensor | np.ndarray) -> TensorSplit:
        """A copy holding only `indices` (in that order)."""
        idx = torch.as_tensor(indices, dtype=torch.long, device=self.y.device)
        return TensorSplit(
            x=self.x.index_select(0, idx.to(self.x.device)), y=self.y.index_select(0, idx)
        )

    def to(self, device: torch.device | str) -> TensorSplit:
        """Move the whole split (still uint8) to `device`, e.g. to keep a data set on the GPU."""
        return TensorSplit(x=self.x.to(device), y=self.y.to(device))


@dataclass(frozen=True, eq=False, kw_only=True)
class DataSplits:
    """What a trial trains, validates and tests on, plus what a model needs to normalise.

    `mean`/`std` are per channel on the [0,1] scale; models normalise inside themselves so that
    attacks work in [0,1] pixel space.
    """

    name: str
    train: TensorSplit
    val: TensorSplit
    test: TensorSplit
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool


@dataclass(frozen=True, kw_only=True)
class LoadRequest:
    """What every registered loader receives; loaders ignore what they do not need."""

    data_dir: Path
    download: bool = False
    synthetic: Any = None
    """`data.synthetic` (a `SyntheticConfig` or a mapping), for the synthetic loader."""


@dataclass(frozen=True, eq=False, kw_only=True)
class SourceData:
    """A loader's answer: the data set's own train and test sets, before any carving."""

    train: TensorSplit
    test: TensorSplit
    num_classes: int
    augment: bool


def _allocate(counts: np.ndarray, total: int, caps: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """Split `total` across classes in proportion to `counts` (largest remainder).

    Each class gets at least `floors` and at most `caps`; ties go to the lower class index, so
    the result depends on nothing but the counts.
    """
    n = int(counts.sum())
    if n == 0:
        return np.zeros_like(counts)
    floors = np.minimum(floors, caps)
    quota = counts * (total / n)
    take = np.clip(np.floor(quota).astype(np.int64), floors, caps)
    # Each loop runs at most once per class: floor() and the floors move the sum by < 1 each.
    while take.sum() > total:
        over = np.where(take > floors, take - quota, -np.inf)
        if not np.isfinite(over.max()):
            break
        take[int(np.argmax(over))] -= 1
    while take.sum() < total:
        under = np.where(take < caps, quota - take, -np.inf)
        if not np.isfinite(under.max()):
            break
        take[int(np.argmax(under))] += 1
    return take


def stratified_split(
    labels: np.ndarray | torch.Tensor,
    size: int,
    seed: int | np.random.SeedSequence,
    *,
    keep_one: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Pick `size` indices with the label proportions of `labels`; return (rest, picked).

    Both index arrays are sorted and disjoint. Deterministic in `seed` alone (numpy's own
    generator, never torch's global RNG). With `keep_one`, every class keeps at least one
    example in `rest`; otherwise every class present gets at least one pick when `size` allows.
    """
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
    classes, inverse = np.unique(y, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    size = max(0, min(int(size), len(y)))
    if keep_one:
        caps = counts - (counts > 1)
        floors = np.zeros_like(counts)
    else:
        caps = counts
        floors = np.ones_like(counts) if size >= len(classes) else np.zeros_like(counts)
    take = _allocate(counts, size, caps, floors)
    rng = np.random.default_rng(seed)
    picked = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        picked.append(rng.permutation(members)[: take[c]])
    chosen = np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[chosen] = False
    return np.flatnonzero(mask), chosen


def channel_mean_std(
    x: torch.Tensor, chunk: int = 4096
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std on the [0,1] scale.

    uint8 images go through exact per-channel histograms (fast, no float copy of the data);
    float images are summed in float64 chunks to bound memory.
    """
    channels = x.shape[1]
    count = len(x) * x.shape[2] * x.shape[3]
    if count == 0:
        return (0.0,) * channels, (1.0,) * channels
    if x.dtype == torch.uint8:
        levels = torch.arange(256, dtype=torch.float64) / 255.0
        hist = torch.zeros(channels, 256, dtype=torch.float64)
        step = max(1, (1 << 26) // (x.shape[2] * x.shape[3]))  # bincount has a high fixed cost
        for c in range(channels):
            for start in range(0, len(x), step):
                values = x[start : start + step, c].reshape(-1).cpu()
                hist[c] += torch.bincount(values, minlength=256).to(torch.float64)
        total = hist @ levels
        total_sq = hist @ levels.square()
    else:
        total = torch.zeros(channels, dtype=torch.float64)
        total_sq = torch.zeros(channels, dtype=torch.float64)
        for start in range(0, len(x), chunk):
            part = x[start : start + chunk].to("cpu", torch.float64)
            total += part.sum(dim=(0, 2, 3))
            total_sq += part.square().sum(dim=(0, 2, 3))
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    std = [math.sqrt(v) if v > 1e-12 else 1.0 for v in var.tolist()]
    return tuple(mean.tolist()), tuple(std)
