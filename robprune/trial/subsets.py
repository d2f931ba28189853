"""Which examples each measurement of a trial sees."""

from __future__ import annotations

import torch

from robprune.config import EvalConfig
from robprune.data import DataSplits, TensorSplit

__all__ = ["epoch_subset", "test_split"]


def epoch_subset(data: DataSplits, size: int) -> TensorSplit:
    """The fixed validation subset measured after every epoch (the search objective)."""
    return data.val if len(data.val) <= size else data.val.subset(torch.arange(size))


def test_split(config: EvalConfig, data: DataSplits) -> TensorSplit:
    """The test split, cut to `eval.test_limit` examples for smoke tests."""
    limit = config.test_limit
    if limit is None or limit >= len(data.test):
        return data.test
    return data.test.subset(torch.arange(limit))
