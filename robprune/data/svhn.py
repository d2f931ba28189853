"""SVHN (cropped digits) from `train_32x32.mat` and `test_32x32.mat`; label 10 means digit 0.

No augmentation: flipping digits changes them, and the usual SVHN recipes train without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .files import find_root, one_line, reading
from .splits import LoadRequest, SourceData, TensorSplit

__all__ = ["load_svhn", "read_svhn_mat"]

_SUBDIRS = ["svhn", "SVHN"]


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One .mat file as (uint8 [N,3,32,32], int64 [N] in 0..9)."""
    with reading("svhn", path):
        from scipy.io import loadmat

        mat = loadmat(str(path), variable_names=["X", "y"])
        x = np.asarray(mat["X"])
        y = np.asarray(mat["y"]).astype(np.int64).reshape(-1)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
            raise ValueError(f"'X' is {x.dtype} {x.shape}, expected uint8 (32, 32, 3, N)")
        if len(y) != x.shape[3]:
            raise ValueError(f"{x.shape[3]} images but {len(y)} labels")
        if len(y) and (y.min() < 0 or y.max() > 10):
            raise ValueError("labels outside 1..10 (or 0..9)")
    y[y == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y


def _download(base: Path) -> None:
    try:
        from torchvision import datasets

        for split in ("train", "test"):
            datasets.SVHN(root=str(base), split=split, download=True)
    except Exception as exc:
        raise DataError(f"svhn: download into {base} failed ({one_line(exc)})") from None


def load_svhn(request: LoadRequest) -> SourceData:
    """`train_32x32.mat` / `test_32x32.mat` in data_dir (or its `svhn/` subfolder)."""
    base = request.data_dir
    root = find_root(base, _SUBDIRS, "train_32x32.mat")
    if root is None and request.download:
        _download(base)
        root = find_root(base, _SUBDIRS, "train_32x32.mat")
    if root is None:
        hint = "" if request.download else "; set data.download: true to fetch it"
        raise DataError(
            f"svhn: no data found; expected {base}/train_32x32.mat and test_32x32.mat "
            f"(or under {base / 'svhn'}){hint}"
        )
    train_x, train_y = read_svhn_mat(root / "train_32x32.mat")
    test_x, test_y = read_svhn_mat(root / "test_32x32.mat")
    return SourceData(
        train=TensorSplit(x=torch.from_numpy(train_x), y=torch.from_numpy(train_y)),
        test=TensorSplit(x=torch.from_numpy(test_x), y=torch.from_numpy(test_y)),
        num_classes=10,
        augment=False,
    )
