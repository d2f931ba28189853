"""The data layer on small files written in the real on-disk formats (no downloads)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from robprune.config import parse_trial_config
from robprune.data import (
    DATASETS,
    DataSplits,
    TensorSplit,
    augment_batch,
    iterate_batches,
    load_data,
    stratified_split,
    to_float,
)
from robprune.errors import BadInput, ConfigError, DataError
from tests.support.requirements import cuda_only

# ---------------------------------------------------------------- writers of the real formats


def _images_with_ids(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random CIFAR rows [N,3072] whose first two bytes spell a unique id, to track images."""
    data = rng.integers(0, 256, size=(len(ids), 3072), dtype=np.uint8)
    data[:, 0] = ids // 256
    data[:, 1] = ids % 256
    return data


def _ids(x: torch.Tensor) -> np.ndarray:
    flat = x.reshape(len(x), -1).numpy().astype(np.int64)
    return flat[:, 0] * 256 + flat[:, 1]


def _pickle(path: Path, obj: dict) -> None:
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
            b"data": _images_with_ids(ids, rng),
            b"filenames": [f"img_{k}.png".encode() for k in ids],
        }
        _pickle(root / f"data_batch_{i}", batch)
    test_ids = np.arange(10_000, 10_000 + test_n)
    _pickle(
        root / "test_batch",
        {
            b"labels": [int(k % 10) for k in range(test_n)],
            b"data": _images_with_ids(test_ids, rng),
        },
    )
    return root


def write_cifar100(base: Path, train_n: int = 300, test_n: int = 100) -> Path:
    root = base / "cifar-100-python"
    root.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for name, n in (("train", train_n), ("test", test_n)):
        fine = [int(k % 100) for k in range(n)]
        _pickle(
            root / name,
            {
                b"fine_labels": fine,
                b"coarse_labels": [f // 5 for f in fine],
                b"data": _images_with_ids(np.arange(n), rng),
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
    train_ids, val_ids = set(_ids(d.train.x)), set(_ids(d.val.x))
    assert not train_ids & val_ids
    assert train_ids | val_ids == set(range(200))  # val carved from train, nothing lost
    assert set(_ids(d.test.x)) == set(range(10_000, 10_030))
    assert torch.bincount(d.val.y, minlength=10).tolist() == [2] * 10
    # Same seed, same split; another seed, another split; the torch global RNG is irrelevant.
    torch.manual_seed(123)
    again = load_data("cifar10", data_dir=tmp_path, seed=0)
    assert torch.equal(again.val.x, d.val.x) and torch.equal(again.train.y, d.train.y)
    other = load_data("cifar10", data_dir=tmp_path, seed=1)
    assert set(_ids(other.val.x)) != val_ids


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
    assert set(_ids(d.train.x)) <= set(_ids(full.train.x))
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


# ---------------------------------------------------------------- batches


def test_iterate_batches_plain_covers_everything():
    x = torch.arange(10 * 3 * 4 * 4, dtype=torch.int64).reshape(10, 3, 4, 4) % 256
    split = TensorSplit(x=x.to(torch.uint8), y=torch.arange(10))
    batches = list(
        iterate_batches(split, batch_size=4, shuffle=False, augment=False, generator=None)
    )
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    xs = torch.cat([b[0] for b in batches])
    assert xs.dtype == torch.float32 and torch.allclose(xs * 255, x.float())
    assert torch.equal(torch.cat([b[1] for b in batches]), torch.arange(10))
    dropped = list(
        iterate_batches(
            split, batch_size=4, shuffle=True, augment=False, generator=None, drop_last=True
        )
    )
    assert [len(b[1]) for b in dropped] == [4, 4]


def test_iterate_batches_augment_deterministic_and_in_range():
    d = load_data("synthetic", synthetic={"train_size": 64, "test_size": 8})

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        return list(
            iterate_batches(d.train, batch_size=16, shuffle=True, augment=True, generator=g)
        )

    a, b, c = run(0), run(0), run(1)
    assert len(a) == 4
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert xa.shape[1:] == (3, 32, 32) and xa.dtype == torch.float32
        assert float(xa.min()) >= 0.0 and float(xa.max()) <= 1.0
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a[0][0], c[0][0])
    labels = torch.cat([y for _, y in a])
    assert sorted(labels.tolist()) == sorted(d.train.y.tolist())  # a permutation of the split


def test_augment_batch_is_a_padded_crop_or_flip():
    x = torch.randint(1, 256, (32, 2, 8, 8), dtype=torch.uint8)  # no zeros: padding shows
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, generator=g, pad=2)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x.int(), (2, 2, 2, 2))
    for i in range(len(x)):
        candidates = [
            padded[i, :, r : r + 8, c : c + 8] for r in range(5) for c in range(5)
        ]  # every crop, flipped or not
        assert any(
            torch.equal(out[i].int(), cand) or torch.equal(out[i].int(), cand.flip(-1))
            for cand in candidates
        )
    # Same draws on uint8 and float give the same images.
    f = augment_batch(to_float(x), generator=torch.Generator().manual_seed(0), pad=2)
    assert torch.allclose(f, to_float(out))
    assert torch.equal(augment_batch(x, generator=g, pad=0, flip=False), x)


@cuda_only()
def test_iterate_batches_on_cuda_matches_cpu():
    d = load_data("synthetic", synthetic={"train_size": 300, "test_size": 8})

    def run(split, device):
        g = torch.Generator().manual_seed(4)
        kw = {"batch_size": 64, "shuffle": True, "augment": True, "generator": g}
        return list(iterate_batches(split, device=device, **kw))

    cpu = run(d.train, "cpu")
    for split in (d.train, d.train.to("cuda")):  # host data, or data kept on the GPU
        gpu = run(split, "cuda")
        for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
            assert xg.device.type == "cuda" and torch.equal(xg.cpu(), xc)
            assert torch.equal(yg.cpu(), yc)


def test_tensor_split_rejects_bad_tensors():
    with pytest.raises(TypeError):
        TensorSplit(
            x=torch.zeros(2, 1, 2, 2, dtype=torch.float64), y=torch.zeros(2, dtype=torch.long)
        )
    with pytest.raises(ValueError):
        TensorSplit(x=torch.zeros(2, 2, 2, dtype=torch.uint8), y=torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError):
        TensorSplit(
            x=torch.zeros(3, 1, 2, 2, dtype=torch.uint8), y=torch.zeros(2, dtype=torch.long)
        )


def test_to_float():
    assert torch.equal(
        to_float(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([0.0, 1.0])
    )
    half = torch.tensor([0.5], dtype=torch.float64)
    assert to_float(half).dtype == torch.float32
    with pytest.raises(TypeError):
        to_float(torch.tensor([1, 2]))


# ---------------------------------------------------------------- bad input


# The loader names its own arguments; the config layer reports the same input by key path
# (tests/robprune/test_config.py), before any loading.


def test_unknown_dataset():
    with pytest.raises(ValueError) as exc:
        load_data("imagenet")
    assert str(exc.value).startswith("dataset: ")
    assert_one_line(exc, "'imagenet'", "allowed:", "cifar10", "digits")


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 0.51, 1.0, True, "0.1", float("nan")])
def test_bad_val_fraction(fraction):
    with pytest.raises(ValueError) as exc:
        load_data("digits", val_fraction=fraction)
    assert str(exc.value).startswith("val_fraction ")


@pytest.mark.parametrize("limit", [0, -5, True, 2.5])
def test_bad_train_limit_type(limit):
    with pytest.raises(ValueError) as exc:
        load_data("digits", train_limit=limit)
    assert str(exc.value).startswith("train_limit ")


def test_train_limit_below_class_count():
    with pytest.raises(DataError) as exc:  # bad input (exit 2) known only once loaded
        load_data("digits", train_limit=9)
    assert str(exc.value).startswith("train_limit: ")
    assert_one_line(exc, "10 classes")


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"shape": [3, 32]}, "synthetic.shape"),
        ({"shape": [3, 0, 32]}, "synthetic.shape"),
        ({"shape": "3x32x32"}, "synthetic.shape"),
        ({"shape": [3, 32.5, 32]}, "synthetic.shape[1]"),
        ({"num_classes": 1}, "synthetic.num_classes"),
        ({"train_size": 5}, "synthetic.train_size"),
        ({"test_size": 0}, "synthetic.test_size"),
        ({"colour": "red"}, "synthetic.colour"),
    ],
)
def test_bad_synthetic(spec, path):
    """The loader checks its `synthetic` argument with the config's own rules (one place)."""
    with pytest.raises(ConfigError) as exc:
        load_data("synthetic", synthetic=spec)
    assert exc.value.path == path
    with pytest.raises(ConfigError) as exc:
        parse_trial_config({"data": {"dataset": "synthetic", "synthetic": spec}})
    assert exc.value.path == f"data.{path}"


def test_synthetic_config_that_validates_always_loads():
    """`train_size` and `test_size` at their smallest allowed values load and split."""
    spec = {"num_classes": 3, "train_size": 6, "test_size": 1, "shape": [1, 4, 4]}
    config = parse_trial_config({"data": {"dataset": "synthetic", "synthetic": spec}})
    splits = load_data("synthetic", synthetic=config.data.synthetic, val_fraction=0.5)
    assert len(splits.test) == 1
    assert sorted(set(splits.train.y.tolist())) == [0, 1, 2]
    assert len(splits.val) >= 1


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        ("cifar10", "cifar-10-batches-py"),
        ("cifar100", "cifar-100-python"),
        ("svhn", "train_32x32.mat"),
    ],
)
def test_missing_directory(tmp_path, dataset, expected):
    where = tmp_path / "nowhere"
    with pytest.raises(DataError) as exc:
        load_data(dataset, data_dir=where)
    assert_one_line(exc, dataset, str(where), expected, "data.download: true")
    assert isinstance(exc.value, BadInput)


def test_missing_tinyimagenet_says_fetch_manually(tmp_path):
    for download in (False, True):
        with pytest.raises(DataError) as exc:
            load_data("tinyimagenet", data_dir=tmp_path, download=download)
        assert_one_line(exc, "tinyimagenet", str(tmp_path / "tiny-imagenet-200"), "unzip")


def test_default_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBPRUNE_DATA_DIR", str(tmp_path / "env-data"))
    with pytest.raises(DataError) as exc:
        load_data("cifar10")
    assert_one_line(exc, str(tmp_path / "env-data" / "cifar-10-batches-py"))


def test_truncated_cifar_pickle(tmp_path):
    root = write_cifar10(tmp_path)
    path = root / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError) as exc:
        load_data("cifar10", data_dir=tmp_path)
    assert_one_line(exc, "cifar10", "corrupt", str(path))


def test_missing_cifar_batch(tmp_path):
    root = write_cifar10(tmp_path)
    (root / "data_batch_4").unlink()
    with pytest.raises(DataError) as exc:
        load_data("cifar10", data_dir=tmp_path)
    assert_one_line(exc, "missing", str(root / "data_batch_4"))


def test_cifar_pickle_cannot_run_code(tmp_path):
    root = write_cifar10(tmp_path)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    _pickle(root / "test_batch", {b"data": Evil(), b"labels": []})
    with pytest.raises(DataError) as exc:
        load_data("cifar10", data_dir=tmp_path)
    assert_one_line(exc, str(root / "test_batch"))
    assert not marker.exists()


def test_cifar100_labels_out_of_range(tmp_path):
    root = write_cifar100(tmp_path)
    _pickle(root / "test", {b"fine_labels": [100], b"data": np.zeros((1, 3072), np.uint8)})
    with pytest.raises(DataError) as exc:
        load_data("cifar100", data_dir=tmp_path)
    assert_one_line(exc, str(root / "test"), "labels")


def test_garbage_svhn_mat(tmp_path):
    root = write_svhn(tmp_path)
    (root / "train_32x32.mat").write_bytes(b"this is not a MATLAB file" * 10)
    with pytest.raises(DataError) as exc:
        load_data("svhn", data_dir=root)
    assert_one_line(exc, "svhn", "corrupt", str(root / "train_32x32.mat"))


def test_svhn_missing_test_file(tmp_path):
    root = write_svhn(tmp_path)
    (root / "test_32x32.mat").unlink()
    with pytest.raises(DataError) as exc:
        load_data("svhn", data_dir=root)
    assert_one_line(exc, str(root / "test_32x32.mat"))


def test_tinyimagenet_missing_annotations(tmp_path):
    root = write_tiny(tmp_path)
    (root / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DataError) as exc:
        load_data("tinyimagenet", data_dir=tmp_path)
    assert_one_line(exc, str(root / "val" / "val_annotations.txt"))


def test_tinyimagenet_bad_annotation_and_corrupt_jpeg(tmp_path):
    root = write_tiny(tmp_path)
    annotations = root / "val" / "val_annotations.txt"
    annotations.write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(DataError) as exc:
        load_data("tinyimagenet", data_dir=tmp_path)
    assert_one_line(exc, str(annotations), "line 1")
    annotations.write_text("val_0.JPEG\tn01\t0\t0\t1\t1\n")
    bad = root / "train" / "n03" / "images" / "n03_2.JPEG"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError) as exc:
        load_data("tinyimagenet", data_dir=tmp_path)
    assert_one_line(exc, "corrupt image", str(bad))


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise RuntimeError("network is unreachable\nsecond line")

    monkeypatch.setattr(tvd, "CIFAR10", offline)
    with pytest.raises(DataError) as exc:
        load_data("cifar10", data_dir=tmp_path, download=True)
    assert_one_line(exc, "download", str(tmp_path), "unreachable second line")


def test_download_uses_torchvision_root(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    roots = []

    def fake_cifar10(root, train, download):
        roots.append(Path(root))
        if not (Path(root) / "cifar-10-batches-py").exists():
            write_cifar10(Path(root))

    monkeypatch.setattr(tvd, "CIFAR10", fake_cifar10)
    d = load_data("cifar10", data_dir=tmp_path / "cifar-10-batches-py", download=True)
    assert roots and all(r == tmp_path for r in roots)  # the subfolder's parent
    assert len(d.test) == 30
