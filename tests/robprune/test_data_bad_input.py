"""The data layer's bad input: each a one-line error naming what is wrong (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from robprune.config import parse_trial_config
from robprune.data import load_data
from robprune.errors import BadInput, ConfigError, DataError
from tests.support.data_files import (
    assert_one_line,
    write_cifar10,
    write_cifar100,
    write_pickle,
    write_svhn,
    write_tiny,
)

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

    write_pickle(root / "test_batch", {b"data": Evil(), b"labels": []})
    with pytest.raises(DataError) as exc:
        load_data("cifar10", data_dir=tmp_path)
    assert_one_line(exc, str(root / "test_batch"))
    assert not marker.exists()


def test_cifar100_labels_out_of_range(tmp_path):
    root = write_cifar100(tmp_path)
    write_pickle(root / "test", {b"fine_labels": [100], b"data": np.zeros((1, 3072), np.uint8)})
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
