"""scikit-learn's bundled 8x8 handwritten digits: the offline default, nothing to download."""

from __future__ import annotations

import numpy as np
import torch

from .splits import LoadRequest, SourceData, TensorSplit, stratified_split

__all__ = ["DIGITS_TEST_FRACTION", "load_digits"]

# A fixed test split (seed 0, whatever the trial seed) so every trial is scored on the same images.
DIGITS_TEST_FRACTION = 0.2
_TEST_SEED = 0


def load_digits(request: LoadRequest) -> SourceData:
    """1797 images, 1x8x8, values 0..16 scaled to [0,1] (kept float: 17 levels are not bytes)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    train_idx, test_idx = stratified_split(
        y.numpy(), round(DIGITS_TEST_FRACTION * len(y)), _TEST_SEED
    )
    full = TensorSplit(x=x, y=y)
    return SourceData(
        train=full.subset(train_idx),
        test=full.subset(test_idx),
        num_classes=10,
        augment=False,
    )
