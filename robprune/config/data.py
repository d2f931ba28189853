"""The `data` section of the trial config, torch-free, so loaders can take the same record.

`SyntheticConfig` is both `data.synthetic` in a trial config and the `synthetic` argument of
`robprune.data.load_data`: one set of rules (sizes, shape, every class in the training and the
validation split), so a config that validates always loads. Re-exported by `robprune.config`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from robprune.config.names import DATASETS, VAL_SOURCES
from robprune.config.typed_mapping import Check, Choice, Interval
from robprune.config.typed_mapping import require as _check

__all__ = ["DATASETS", "DataConfig", "SyntheticConfig", "check_train_limit"]


def _image_shape(shape: tuple[int, ...]) -> None:
    """Three positive integers [C, H, W]."""
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"must be three positive integers [C, H, W], got {list(shape)!r}")


def check_train_limit(train_limit: int | None, num_classes: int) -> None:
    """A stratified `train_limit` keeps one example per class: it needs >= `num_classes`."""
    if train_limit is not None and train_limit < num_classes:
        raise ValueError(f"{train_limit} is fewer than the {num_classes} classes")


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig:
    """Random learnable images (`robprune.data.synthetic`); the loader takes this same record."""

    shape: Annotated[tuple[int, ...], Check(_image_shape)] = (3, 32, 32)
    """[C, H, W] of every image."""
    num_classes: Annotated[int, Interval(2)] = 10
    train_size: Annotated[int, Interval(2)] = 512
    """Training examples before the validation split (>= 2 * num_classes)."""
    test_size: Annotated[int, Interval(1)] = 256
    seed: Annotated[int, Interval(0, 2**31 - 1)] = 0
    """Seed of the images, fixed across trials as a real data set is."""

    def validate(self, path: str) -> None:
        # Classes are balanced; two examples per class let the stratified validation split
        # take one and leave one for training (robprune.data.splits.stratified_split).
        need = 2 * self.num_classes
        _check(
            self.train_size >= need,
            f"{path}.train_size",
            f"must be >= 2 * num_classes = {need} (every class needs an example in both the "
            f"training and the validation split), got {self.train_size}",
        )


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    dataset: Annotated[str, Choice(DATASETS)] = "digits"
    """Registry name, one of DATASETS."""
    data_dir: str | None = None
    """Folder holding the data set in its standard on-disk layout (not needed for digits)."""
    download: bool = False
    """Download into `data_dir` when missing; never implicit."""
    val_fraction: Annotated[float, Interval(0, 0.5, lo_open=True)] = 0.1
    """Fraction of `val_source` carved out as the validation split (the search objective)."""
    val_source: Annotated[str, Choice(VAL_SOURCES)] = "train"
    """Carve validation from the training split (train; drawn per seed) or from the test split
    (test: a fixed stratified draw, the rest is the reported test split, disjoint from it). Use
    test with a brought checkpoint trained on the full training set."""
    train_limit: Annotated[int | None, Interval(1)] = None
    """Use at most this many training examples (smoke tests, benchmarks)."""
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    """Shape, sizes and generating `seed` of the `synthetic` data set (fixed across trials)."""

    def validate(self, path: str) -> None:
        if self.dataset == "synthetic":
            try:
                check_train_limit(self.train_limit, self.synthetic.num_classes)
            except ValueError as exc:
                _check(False, f"{path}.train_limit", f"{exc} of {path}.synthetic")
