"""Tiny-ImageNet-200 from its standard folder tree; the official val set is the test split.

Decoding 110,000 JPEGs takes a minute, so the decoded arrays are cached beside the data
(`robprune_cache_{train,test}.npz`, uint8) and reused while the file listing is unchanged.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from robprune.io.atomic import atomic_write

from ..errors import DataError
from .files import find_root, one_line
from .splits import LoadRequest, SourceData, TensorSplit

__all__ = ["IMAGE_SIZE", "load_tinyimagenet"]

IMAGE_SIZE = 64
_SUBDIR = "tiny-imagenet-200"
_SUFFIXES = {".jpeg", ".jpg", ".png"}
_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def _read_wnids(root: Path) -> list[str]:
    path = root / "wnids.txt"
    try:
        wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"tinyimagenet: cannot read {path} ({one_line(exc)})") from None
    if not wnids or len(set(wnids)) != len(wnids):
        raise DataError(f"tinyimagenet: corrupt file {path} (empty or repeated class ids)")
    return sorted(wnids)  # ImageFolder's convention: class index = sorted position


def _train_files(root: Path, wnids: list[str]) -> list[tuple[Path, int]]:
    files: list[tuple[Path, int]] = []
    for label, wnid in enumerate(wnids):
        folder = root / "train" / wnid / "images"
        if not folder.is_dir():
            raise DataError(f"tinyimagenet: missing folder {folder}")
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES)
        if not images:
            raise DataError(f"tinyimagenet: no images in {folder}")
        files.extend((p, label) for p in images)
    return files


def _val_files(root: Path, wnids: list[str]) -> list[tuple[Path, int]]:
    path = root / "val" / "val_annotations.txt"
    index = {wnid: i for i, wnid in enumerate(wnids)}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise DataError(f"tinyimagenet: missing file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"tinyimagenet: cannot read {path} ({one_line(exc)})") from None
    files: list[tuple[Path, int]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2 or fields[1].strip() not in index:
            raise DataError(
                f"tinyimagenet: corrupt file {path} (line {number}: expected "
                f"'filename<TAB>wnid<TAB>...' with a wnid from wnids.txt)"
            )
        files.append((root / "val" / "images" / fields[0].strip(), index[fields[1].strip()]))
    if not files:
        raise DataError(f"tinyimagenet: corrupt file {path} (no annotations)")
    return sorted(files)


def _fingerprint(root: Path, files: list[tuple[Path, int]]) -> str:
    """Cheap identity of a listing (paths, sizes, labels), to know when a cache is stale."""
    digest = hashlib.sha1(f"{IMAGE_SIZE}".encode())
    for path, label in files:
        try:
            size = path.stat().st_size
        except OSError:
            raise DataError(f"tinyimagenet: missing file {path}") from None
        digest.update(f"{path.relative_to(root)}\t{size}\t{label}\n".encode())
    return digest.hexdigest()


def _decode(path: Path) -> np.ndarray:
    """One image as uint8 [3,64,64]: grayscale/CMYK become RGB, odd sizes are resized."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (IMAGE_SIZE, IMAGE_SIZE):
                image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    except FileNotFoundError:
        raise DataError(f"tinyimagenet: missing file {path}") from None
    except Exception as exc:
        raise DataError(f"tinyimagenet: corrupt image {path} ({one_line(exc)})") from None


def _decode_all(files: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray]:
    x = np.empty((len(files), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    y = np.fromiter((label for _, label in files), dtype=np.int64, count=len(files))

    def work(i: int) -> None:
        x[i] = _decode(files[i][0])

    workers = min(16, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without the GIL
        for _ in pool.map(work, range(len(files))):
            pass
    return x, y


def _load_cached(path: Path, fingerprint: str) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as cache:
            if str(cache["fingerprint"]) != fingerprint:
                return None
            return cache["x"], cache["y"]
    except Exception:  # absent, stale format or damaged: decode again
        return None


def _save_cached(path: Path, fingerprint: str, x: np.ndarray, y: np.ndarray) -> None:
    """Atomic (temporary file, then rename); a read-only data folder just means no cache."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, x=x, y=y, fingerprint=np.array(fingerprint))

    try:
        atomic_write(path, write)
    except OSError:
        pass


def _split(root: Path, name: str, files: list[tuple[Path, int]]) -> TensorSplit:
    fingerprint = _fingerprint(root, files)
    cache_path = root / f"robprune_cache_{name}.npz"
    arrays = _load_cached(cache_path, fingerprint)
    if arrays is None:
        arrays = _decode_all(files)
        _save_cached(cache_path, fingerprint, *arrays)
    x, y = arrays
    return TensorSplit(x=torch.from_numpy(x), y=torch.from_numpy(y))


def load_tinyimagenet(request: LoadRequest) -> SourceData:
    """`tiny-imagenet-200/{wnids.txt, train/<wnid>/images, val/images, val_annotations.txt}`."""
    base = request.data_dir
    root = find_root(base, [_SUBDIR], "wnids.txt")
    if root is None:
        how = "it has no automatic download; " if request.download else ""
        raise DataError(
            f"tinyimagenet: no data found; expected {base / _SUBDIR}/wnids.txt "
            f"(or {base}/wnids.txt); {how}fetch {_URL} and unzip it into {base}"
        )
    wnids = _read_wnids(root)
    train_files = _train_files(root, wnids)
    val_files = _val_files(root, wnids)
    return SourceData(
        train=_split(root, "train", train_files),
        test=_split(root, "test", val_files),
        num_classes=len(wnids),
        augment=True,
    )
