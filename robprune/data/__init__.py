"""Data sets as in-memory tensors, split into train / val / test, and the batch iterator.

`load_data(name, ...)` returns `DataSplits`; `iterate_batches` feeds the training loops.
Registered data sets: see `DATASETS` (digits, synthetic, cifar10, cifar100, svhn,
tinyimagenet). Imports neither Ray nor Optuna.
"""

from .batches import augment_batch, iterate_batches, place_split, to_float
from .registry import DATASETS, Loader, load_data
from .splits import (
    DataSplits,
    LoadRequest,
    SourceData,
    TensorSplit,
    channel_mean_std,
    stratified_split,
)

__all__ = [
    "DATASETS",
    "DataSplits",
    "LoadRequest",
    "Loader",
    "SourceData",
    "TensorSplit",
    "augment_batch",
    "channel_mean_std",
    "iterate_batches",
    "place_split",
    "load_data",
    "stratified_split",
    "to_float",
]
