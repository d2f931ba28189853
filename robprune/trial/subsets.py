"""Which examples each measurement of a trial sees.

A subset is a stratified random draw with a fixed seed, never the first N examples: data sets
stored class by class (Tiny-ImageNet's training folders) would otherwise give a subset of a
few classes, and that subset drives the search objective, ASHA and `val_robust_acc`.
"""

from __future__ import annotations

import numpy as np

from robprune.config import EvalConfig
from robprune.data import DataSplits, TensorSplit, stratified_split

__all__ = ["SUBSET_DRAW", "epoch_subset", "stratified_subset", "limited_test_split"]

#: Names the subset draw in cache keys, so numbers on an older (first-N) subset are not reused.
SUBSET_DRAW = "stratified-1"
_EPOCH_TAG, _TEST_TAG = 0x7A11, 0x7E57


def stratified_subset(split: TensorSplit, size: int, *, seed: int, tag: int) -> TensorSplit:
    """`size` examples with the label proportions of `split`, drawn with seed (seed, tag)."""
    if len(split) <= size:
        return split
    _, picked = stratified_split(
        split.y, size, np.random.SeedSequence([seed, tag]), keep_one=False
    )
    return split.subset(picked)


def epoch_subset(data: DataSplits, size: int, *, seed: int) -> TensorSplit:
    """The fixed validation subset measured after every epoch (the search objective)."""
    return stratified_subset(data.val, size, seed=seed, tag=_EPOCH_TAG)


def limited_test_split(config: EvalConfig, data: DataSplits) -> TensorSplit:
    """The test split, or a stratified `eval.test_limit` of it (smoke tests).

    Seed 0 whatever the trial seed: trials of one search are compared on the same examples.
    """
    if config.test_limit is None:
        return data.test
    return stratified_subset(data.test, config.test_limit, seed=0, tag=_TEST_TAG)
