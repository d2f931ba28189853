"""Each data set's loader on small files written in the real on-disk formats (no downloads)."""

from __future__ import annotations

import pickle

import numpy as np
import torch

from robprune.data import (
    DATASETS,
    load_data,
    stratified_split,
    to_float,
)
from tests.support.data_files import (
    check_splits,
    image_ids,
    write_cifar10,
    write_cifar100,
    write_svhn,
    write_tiny,
)

# ---------------------------------------------------------------- loaders


def test_registry_names():
    assert set(DATASETS) == {"digits", "synthetic", "cifar10", "cifar100", "svhn", "tinyimagenet"}


def test_digits_fixed_test_split_and_seeded_val():
    a = load_data("digits", seed=0)
    b = load_data("digits", seed=1)
    check_splits(a)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10 and a.augment is False
    assert a.train.x.dtype == torch.float32 and float(a.train.x.max()) == 1.0
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    assert len(a.test) == round(0.2 * 1797) and len(a.val) == round(0.1 * (1797 - len(a.test)))
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.val.x, b.val.x)
    counts = torch.bincount(a.val.y, minlength=10)
    assert int(counts.max() - counts.min()) <= 1  # stratified


def test_synthetic_shape_determinism_and_learnability():
    spec = {"shape": [2, 5, 7], "num_classes": 4, "train_size": 80, "test_size": 40}
    a = load_data("synthetic", synthetic=spec, seed=5)
    b = load_data("synthetic", synthetic=spec, seed=5)
    check_splits(a)
    assert a.input_shape == (2, 5, 7) and a.num_classes == 4
    assert (len(a.train), len(a.val), len(a.test)) == (72, 8, 40)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.val.y, b.val.y)
    # Nearest class mean classifies the test set well above chance: the data is learnable.
    x, xt = to_float(a.train.x).flatten(1), to_float(a.test.x).flatten(1)
    means = torch.stack([x[a.train.y == c].mean(0) for c in range(4)])
    pred = torch.cdist(xt, means).argmin(1)
    assert (pred == a.test.y).float().mean() > 0.8
    default = load_data("synthetic")
    assert default.input_shape == (3, 32, 32) and len(default.test) == 256


def test_cifar10_real_format(tmp_path):
    write_cifar10(tmp_path)
    d = load_data("cifar10", data_dir=str(tmp_path), val_fraction=0.1, seed=0)
    check_splits(d)
    assert d.input_shape == (3, 32, 32) and d.num_classes == 10 and d.augment is True
    assert d.train.x.dtype == torch.uint8
    assert (len(d.train), len(d.val), len(d.test)) == (180, 20, 30)
    train_ids, val_ids = set(image_ids(d.train.x)), set(image_ids(d.val.x))
    assert not train_ids & val_ids
    assert train_ids | val_ids == set(range(200))  # val carved from train, nothing lost
    assert set(image_ids(d.test.x)) == set(range(10_000, 10_030))
    assert torch.bincount(d.val.y, minlength=10).tolist() == [2] * 10
    # Same seed, same split; another seed, another split; the torch global RNG is irrelevant.
    torch.manual_seed(123)
    again = load_data("cifar10", data_dir=tmp_path, seed=0)
    assert torch.equal(again.val.x, d.val.x) and torch.equal(again.train.y, d.train.y)
    other = load_data("cifar10", data_dir=tmp_path, seed=1)
    assert set(image_ids(other.val.x)) != val_ids


def test_cifar10_pixel_layout_and_subfolder_as_data_dir(tmp_path):
    root = write_cifar10(tmp_path)
    with open(root / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    d = load_data("cifar10", data_dir=root)  # the subfolder itself
    assert np.array_equal(d.test.x.numpy(), raw[b"data"].reshape(-1, 3, 32, 32))
    assert d.test.y.tolist() == raw[b"labels"]


def test_cifar100_fine_labels(tmp_path):
    write_cifar100(tmp_path)
    d = load_data("cifar100", data_dir=tmp_path, seed=2)
    check_splits(d)
    assert d.num_classes == 100 and (len(d.train), len(d.val), len(d.test)) == (270, 30, 100)
    assert sorted(d.test.y.tolist()) == list(range(100))


def test_svhn_labels_and_layout(tmp_path):
    from scipy.io import loadmat

    write_svhn(tmp_path / "svhn")
    d = load_data("svhn", data_dir=tmp_path)  # finds the svhn/ subfolder
    check_splits(d)
    assert d.augment is False and d.input_shape == (3, 32, 32)
    mat = loadmat(tmp_path / "svhn" / "test_32x32.mat")
    assert np.array_equal(d.test.x.numpy(), mat["X"].transpose(3, 2, 0, 1))
    assert d.test.y.tolist() == [int(v) % 10 for v in mat["y"].ravel()]
    assert sorted(set(d.train.y.tolist() + d.val.y.tolist())) == list(range(10))


def test_tinyimagenet_tree_grayscale_and_cache(tmp_path, monkeypatch):
    root = write_tiny(tmp_path)
    d = load_data("tinyimagenet", data_dir=tmp_path, val_fraction=0.2)
    check_splits(d)
    assert d.input_shape == (3, 64, 64) and d.num_classes == 3 and d.augment is True
    assert len(d.train) + len(d.val) == 19 and len(d.test) == 6
    # Classes are indexed in sorted wnid order (n01=0, n02=1, n03=2); val_k is labelled
    # wnids[k % 3] in file order, i.e. n02, n01, n03, ...
    assert d.test.y.tolist() == [1, 0, 2, 1, 0, 2]  # val_0..val_5, sorted by name
    assert (root / "robprune_cache_train.npz").exists()
    # The grayscale image became RGB with equal channels.
    x = torch.cat([d.train.x, d.val.x])
    assert any(torch.equal(img[0], img[1]) and torch.equal(img[1], img[2]) for img in x)

    import robprune.data.tinyimagenet as tiny

    def no_decode(path):
        raise AssertionError("should have used the cache")

    monkeypatch.setattr(tiny, "_decode", no_decode)
    cached = load_data("tinyimagenet", data_dir=root, val_fraction=0.2)
    assert torch.equal(cached.train.x, d.train.x) and torch.equal(cached.test.y, d.test.y)


def test_tinyimagenet_cache_is_rebuilt_when_files_change(tmp_path):
    from PIL import Image

    root = write_tiny(tmp_path)
    first = load_data("tinyimagenet", data_dir=root, val_fraction=0.2)
    Image.new("RGB", (64, 64), (255, 0, 0)).save(root / "train" / "n03" / "images" / "new.JPEG")
    second = load_data("tinyimagenet", data_dir=root, val_fraction=0.2)
    assert len(second.train) + len(second.val) == len(first.train) + len(first.val) + 1


def test_train_limit_is_stratified_and_after_val(tmp_path):
    write_cifar10(tmp_path)
    full = load_data("cifar10", data_dir=tmp_path, seed=3)
    d = load_data("cifar10", data_dir=tmp_path, seed=3, train_limit=50)
    assert torch.equal(d.val.x, full.val.x)  # val carved first, unaffected by the limit
    assert len(d.train) == 50
    assert torch.bincount(d.train.y, minlength=10).tolist() == [5] * 10
    assert set(image_ids(d.train.x)) <= set(image_ids(full.train.x))
    big = load_data("cifar10", data_dir=tmp_path, seed=3, train_limit=10_000)
    assert len(big.train) == len(full.train)


def test_stratified_split_imbalanced_and_deterministic():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 1)
    rest, picked = stratified_split(labels, 8, seed=7)
    assert len(picked) == 8 and not set(rest) & set(picked) and len(rest) + 8 == 81
    assert np.bincount(labels[picked], minlength=3).tolist() == [5, 3, 0]  # keeps class 2
    assert np.array_equal(stratified_split(labels, 8, seed=7)[1], picked)
    _, limited = stratified_split(labels, 3, seed=0, keep_one=False)
    assert sorted(labels[limited].tolist()) == [0, 1, 2]  # every class at least once
