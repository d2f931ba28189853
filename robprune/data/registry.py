"""The data set registry and `load_data`: a loader per name, one shared way to carve splits.

A new data set is one entry in `DATASETS`: a function from a `LoadRequest` to the data set's
own train and test sets (`SourceData`). Validation carving, `train_limit` and the
normalisation statistics are the same for all of them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from robprune.config import names
from robprune.config.data import check_train_limit
from robprune.config.names import VAL_SOURCES, check_registry

from ..errors import DataError
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits
from .files import resolve_data_dir
from .splits import DataSplits, LoadRequest, SourceData, channel_mean_std, stratified_split
from .svhn import load_svhn
from .synthetic import SyntheticConfig, load_synthetic, parse_synthetic
from .tinyimagenet import load_tinyimagenet

__all__ = ["DATASETS", "Loader", "load_data"]

Loader = Callable[[LoadRequest], SourceData]

DATASETS: dict[str, Loader] = {
    "digits": load_digits,
    "synthetic": load_synthetic,
    "cifar10": load_cifar10,
    "cifar100": load_cifar100,
    "svhn": load_svhn,
    "tinyimagenet": load_tinyimagenet,
}
check_registry("data set", names.DATASETS, DATASETS)

# Seeds for the two draws, so carving val and limiting train are independent streams.
_VAL_STREAM = 0
_LIMIT_STREAM = 1
#: A test-carved validation split is one fixed draw (seed 0 whatever the trial seed), so every
#: trial reports on the same remaining test examples.
_TEST_VAL_STREAM = 2


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_args(
    dataset: Any, val_fraction: Any, seed: Any, train_limit: Any, synthetic: Any
) -> None:
    """ValueError naming the argument (the config layer reports key paths before this runs)."""
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise ValueError(f"dataset: unknown {dataset!r}; allowed: {', '.join(DATASETS)}")
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, int | float)
        or not math.isfinite(val_fraction)
        or not 0.0 < val_fraction <= 0.5
    ):
        raise ValueError(f"val_fraction must be a number in (0, 0.5], got {val_fraction!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if train_limit is not None and (not _is_int(train_limit) or train_limit < 1):
        raise ValueError(f"train_limit must be a positive integer or None, got {train_limit!r}")
    if dataset == "synthetic":
        parse_synthetic(synthetic)  # fail on a bad shape before any work


def _carve_validation(source, val_source: str, val_fraction: float, seed: int):
    """(training indices, val, test): val carved from the training or from the test split."""
    full = source.train
    carved = full if val_source == "train" else source.test
    val_size = max(1, round(val_fraction * len(carved)))
    stream = [seed, _VAL_STREAM] if val_source == "train" else [0, _TEST_VAL_STREAM]
    kept_idx, val_idx = stratified_split(carved.y, val_size, np.random.SeedSequence(stream))
    if val_source == "train":
        return kept_idx, carved.subset(val_idx), source.test
    return np.arange(len(full)), carved.subset(val_idx), source.test.subset(kept_idx)


def load_data(
    dataset: str,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_limit: int | None = None,
    synthetic: SyntheticConfig | dict | None = None,
    val_source: str = "train",
) -> DataSplits:
    """Load `dataset` and carve a stratified validation split from its training data
    (`val_source="train"`) or from its test data (`"test"`).

    From train: the test split is the data set's own; val depends only on `seed` (not on
    torch's global RNG). From test: val is a fixed draw of `val_fraction` of the test split
    (the same for every seed) and the test split is the rest, disjoint from it; training keeps
    every training example (what a checkpoint trained on the full training set saw).
    `train_limit` then keeps a stratified subset of the training split. `mean`/`std` are
    measured on the resulting train split.
    """
    _check_args(dataset, val_fraction, seed, train_limit, synthetic)
    if val_source not in VAL_SOURCES:
        raise DataError(f"val_source: unknown {val_source!r}; allowed: {', '.join(VAL_SOURCES)}")
    request = LoadRequest(
        data_dir=resolve_data_dir(data_dir), download=bool(download), synthetic=synthetic
    )
    source = DATASETS[dataset](request)
    full = source.train
    try:
        check_train_limit(train_limit, source.num_classes)  # the config's rule, for any data set
    except ValueError as exc:
        raise DataError(f"train_limit: {exc} of {dataset}") from None
    train_idx, val, test = _carve_validation(source, val_source, val_fraction, seed)
    if len(train_idx) == 0:
        raise DataError(
            f"val_fraction {val_fraction} leaves no training data ({len(full)} examples)"
        )
    if train_limit is not None and train_limit < len(train_idx):
        labels = full.y[train_idx].numpy()
        _, kept = stratified_split(
            labels, train_limit, np.random.SeedSequence([seed, _LIMIT_STREAM]), keep_one=False
        )
        train_idx = train_idx[kept]
    train = full.subset(train_idx)
    mean, std = channel_mean_std(train.x)
    c, h, w = train.x.shape[1:]
    return DataSplits(
        name=dataset,
        train=train,
        val=val,
        test=test,
        num_classes=source.num_classes,
        input_shape=(int(c), int(h), int(w)),
        mean=mean,
        std=std,
        augment=source.augment,
    )
