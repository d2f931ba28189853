"""Small data sets in the real on-disk formats (CIFAR pickles, SVHN .mat, Tiny ImageNet's tree),
and the checks every loaded data set passes."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from robprune.data import (
    DataSplits,
    to_float,
)

# ---------------------------------------------------------------- writers of the real formats


def images_with_ids(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random CIFAR rows [N,3072] whose first two bytes spell a unique id, to track images."""
    data = rng.integers(0, 256, size=(len(ids), 3072), dtype=np.uint8)
    data[:, 0] = ids // 256
    data[:, 1] = ids % 256
    return data


def image_ids(x: torch.Tensor) -> np.ndarray:
    flat = x.reshape(len(x), -1).numpy().astype(np.int64)
    return flat[:, 0] * 256 + flat[:, 1]


def write_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def write_cifar10(base: Path, per_batch: int = 40, test_n: int = 30) -> Path:
    root = base / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(1, 6):
        ids = np.arange((i - 1) * per_batch, i * per_batch)
        labels = [int(v) for v in rng.permutation(np.arange(per_batch) % 10)]
        batch = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": labels,
            b"data": images_with_ids(ids, rng),
            b"filenames": [f"img_{k}.png".encode() for k in ids],
        }
        write_pickle(root / f"data_batch_{i}", batch)
    test_ids = np.arange(10_000, 10_000 + test_n)
    write_pickle(
        root / "test_batch",
        {
            b"labels": [int(k % 10) for k in range(test_n)],
            b"data": images_with_ids(test_ids, rng),
        },
    )
    return root


def write_cifar100(base: Path, train_n: int = 300, test_n: int = 100) -> Path:
    root = base / "cifar-100-python"
    root.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name, n in (("train", train_n), ("test", test_n)):
        fine = [int(k % 100) for k in range(n)]
        write_pickle(
            root / name,
            {
                b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine],
                b"data": images_with_ids(np.arange(n), rng),
            },
        )
    return root


def write_svhn(root: Path, train_n: int = 60, test_n: int = 20) -> Path:
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for name, n in (("train", train_n), ("test", test_n)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 is digit 0
        savemat(root / f"{name}_32x32.mat", {"X": x, "y": y})
    return root


def write_tiny(base: Path, wnids=("n02", "n01", "n03"), per_class: int = 6) -> Path:
    from PIL import Image

    root = base / "tiny-imagenet-200"
    rng = np.random.default_rng(4)
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for wnid in wnids:
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for k in range(per_class):
            pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{wnid}_{k}.JPEG")
    gray = Image.fromarray(rng.integers(0, 256, size=(64, 64), dtype=np.uint8), mode="L")
    gray.save(root / "train" / wnids[0] / "images" / f"{wnids[0]}_gray.JPEG")
    lines = []
    for k in range(2 * len(wnids)):
        name = f"val_{k}.JPEG"
        Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(
            root / "val" / "images" / name
        )
        lines.append(f"{name}\t{wnids[k % len(wnids)]}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def assert_one_line(exc: pytest.ExceptionInfo, *needles: str) -> str:
    text = str(exc.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def check_splits(d: DataSplits) -> None:
    """Invariants every data set shares."""
    for split in (d.train, d.val, d.test):
        assert split.x.ndim == 4 and tuple(split.x.shape[1:]) == d.input_shape
        assert split.x.dtype in (torch.uint8, torch.float32)
        assert split.y.dtype == torch.int64
        assert int(split.y.min()) >= 0 and int(split.y.max()) < d.num_classes
        if split.x.dtype == torch.float32:
            assert float(split.x.min()) >= 0.0 and float(split.x.max()) <= 1.0
    assert len(d.mean) == len(d.std) == d.input_shape[0]
    x = to_float(d.train.x).double()
    assert np.allclose(d.mean, x.mean(dim=(0, 2, 3)).numpy(), atol=1e-6)
    assert np.allclose(d.std, x.std(dim=(0, 2, 3), unbiased=False).numpy(), atol=1e-6)
