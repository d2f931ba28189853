"""CIFAR-10 and CIFAR-100 from their standard python-pickle batches.

Read directly with a restricted unpickler (numpy arrays, lists, bytes only), so a tampered file
cannot run code, and without torchvision's md5 check so any copy in the standard layout works.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .files import find_root, one_line, reading
from .splits import LoadRequest, SourceData, TensorSplit

__all__ = ["load_cifar10", "load_cifar100", "read_cifar_batch"]

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR batch")


def _get(batch: dict, key: str) -> Any:
    """Batches pickled by Python 2 have bytes keys; re-pickled copies may have str keys."""
    if key.encode() in batch:
        return batch[key.encode()]
    if key in batch:
        return batch[key]
    raise KeyError(f"no {key!r} entry")


def read_cifar_batch(
    path: Path, label_key: str, num_classes: int, dataset: str
) -> tuple[np.ndarray, np.ndarray]:
    """One pickle batch as (uint8 [N,3,32,32], int64 [N]); any defect is a one-line DataError."""
    with reading(dataset, path):
        with open(path, "rb") as f:
            batch = _SafeUnpickler(f, encoding="bytes").load()
        if not isinstance(batch, dict):
            raise ValueError(f"expected a dict, got {type(batch).__name__}")
        data = np.asarray(_get(batch, "data"))
        labels = np.asarray(_get(batch, label_key), dtype=np.int64).reshape(-1)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"'data' is {data.dtype} {data.shape}, expected uint8 [N, 3072]")
        if len(labels) != len(data):
            raise ValueError(f"{len(data)} images but {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels outside 0..{num_classes - 1}")
    return data.reshape(-1, 3, 32, 32), labels


def _download(dataset: str, base: Path) -> None:
    """torchvision's downloader into `base` (it creates the standard subfolder there)."""
    try:
        from torchvision import datasets

        cls = datasets.CIFAR10 if dataset == "cifar10" else datasets.CIFAR100
        for train in (True, False):
            cls(root=str(base), train=train, download=True)
    except Exception as exc:
        raise DataError(f"{dataset}: download into {base} failed ({one_line(exc)})") from None


def _load(
    request: LoadRequest,
    *,
    dataset: str,
    subdir: str,
    train_files: list[str],
    test_file: str,
    label_key: str,
    num_classes: int,
) -> SourceData:
    base = request.data_dir
    root = find_root(base, [subdir], train_files[0])
    if root is None and request.download:
        download_base = base.parent if base.name == subdir else base
        _download(dataset, download_base)
        root = find_root(base, [subdir], train_files[0])
    if root is None:
        hint = "" if request.download else "; set data.download: true to fetch it"
        raise DataError(
            f"{dataset}: no data found; expected {base / subdir}/{train_files[0]} "
            f"(or {base}/{train_files[0]}){hint}"
        )
    parts = [
        read_cifar_batch(root / name, label_key, num_classes, dataset) for name in train_files
    ]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = read_cifar_batch(root / test_file, label_key, num_classes, dataset)
    return SourceData(
        train=TensorSplit(x=torch.from_numpy(train_x), y=torch.from_numpy(train_y)),
        test=TensorSplit(
            x=torch.from_numpy(np.ascontiguousarray(test_x)), y=torch.from_numpy(test_y)
        ),
        num_classes=num_classes,
        augment=True,
    )


def load_cifar10(request: LoadRequest) -> SourceData:
    """`cifar-10-batches-py/data_batch_1..5` and `test_batch`."""
    return _load(
        request,
        dataset="cifar10",
        subdir="cifar-10-batches-py",
        train_files=[f"data_batch_{i}" for i in range(1, 6)],
        test_file="test_batch",
        label_key="labels",
        num_classes=10,
    )


def load_cifar100(request: LoadRequest) -> SourceData:
    """`cifar-100-python/train` and `test`, with the 100 fine labels."""
    return _load(
        request,
        dataset="cifar100",
        subdir="cifar-100-python",
        train_files=["train"],
        test_file="test",
        label_key="fine_labels",
        num_classes=100,
    )
