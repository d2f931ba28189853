"""The training loops' batch iterator: plain tensor indexing, no DataLoader worker processes.

Augmentation runs batched on the batch's device (after the uint8 batch has moved there, so the
host-to-device copy is 4x smaller) and draws all randomness from the caller's generator, so a
seeded generator gives the same batches on any device. On CUDA, a split that fits lives on the
device as uint8 (`place_split`) and a CUDA generator keeps every draw there: an epoch then runs
without a host synchronisation. A split left on the host is pinned, and each batch is pinned
before its asynchronous copy (a copy from pageable memory would wait for the queue).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .splits import TensorSplit

__all__ = ["augment_batch", "iterate_batches", "place_split", "to_float"]

#: `place_split(..., "fit")` keeps a split on the accelerator when it takes at most this
#: fraction of the device's free memory.
FIT_FRACTION = 0.25


def place_split(split: TensorSplit, device: torch.device | str, placement: str) -> TensorSplit:
    """`split` where a training loop on `device` should read it.

    placement: `fit` (on `device` if it takes at most FIT_FRACTION of free CUDA memory),
    `device` (always), `host` (stays on the CPU; pinned when `device` is CUDA). On a CPU
    device every placement is the CPU.
    """
    if placement not in ("fit", "device", "host"):
        raise ValueError(f"placement must be fit, device or host, got {placement!r}")
    device = torch.device(device)
    if device.type != "cuda":
        return split.to(device)
    if placement == "fit":
        free, _ = torch.cuda.mem_get_info(device)
        placement = "device" if split.x.nbytes + split.y.nbytes <= FIT_FRACTION * free else "host"
    if placement == "device":
        return split.to(device)
    host = split.to("cpu")
    return TensorSplit(x=host.x.pin_memory(), y=host.y.pin_memory())


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0,1]: uint8 is divided by 255, float is passed through as float32."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    if x.is_floating_point():
        return x.to(torch.float32)
    raise TypeError(f"to_float expects uint8 or floating-point images, got {x.dtype}")


def _random_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def augment_batch(
    x: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    pad: int = 4,
    flip: bool = True,
) -> torch.Tensor:
    """Random crop after zero padding by `pad` pixels, then a random horizontal flip.

    Works on uint8 or float batches [B,C,H,W] and returns the same shape and dtype; one
    gather per axis, with the flip folded into the column indices.
    """
    if x.ndim != 4:
        raise ValueError(f"augment_batch expects [B,C,H,W], got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    if b == 0 or (pad <= 0 and not flip):
        return x
    rdev = _random_device(generator)
    pad = max(int(pad), 0)
    offsets = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=rdev)
    flips = torch.rand(b, generator=generator, device=rdev) < 0.5 if flip else None
    offsets = offsets.to(x.device)
    if pad:
        padded = x.new_zeros((b, c, h + 2 * pad, w + 2 * pad))
        padded[:, :, pad : pad + h, pad : pad + w] = x
    else:
        padded = x
    rows = offsets[:, 0:1] + torch.arange(h, device=x.device)  # [B,H]
    cols = torch.arange(w, device=x.device).expand(b, w)  # [B,W]
    if flips is not None:
        cols = torch.where(flips.to(x.device)[:, None], (w - 1) - cols, cols)
    cols = cols + offsets[:, 1:2]
    out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, padded.shape[3]))
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def iterate_batches(
    split: TensorSplit,
    *,
    batch_size: int,
    shuffle: bool,
    augment: bool,
    generator: torch.Generator | None,
    device: torch.device | str = "cpu",
    drop_last: bool = False,
    pad: int = 4,
    flip: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (x float32 in [0,1], y int64), both on `device`, one pass over `split`.

    Shuffling and augmentation draw only from `generator` (torch's global RNG when None).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = torch.device(device)
    n = len(split)
    order = None
    if shuffle:
        order = torch.randperm(n, generator=generator, device=_random_device(generator))
        order = order.to(split.x.device)  # once per epoch, not once per batch
    copy_async = device.type == "cuda" and split.x.device.type == "cpu"
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        if order is None:  # evaluation order: contiguous slices, no gather
            xb, yb = split.x[start : start + batch_size], split.y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            # index_select: about 10x faster than x[idx] for uint8 rows on CPU
            xb = split.x.index_select(0, idx)
            yb = split.y.index_select(0, idx.to(split.y.device))
        if copy_async:
            xb, yb = xb.pin_memory(), yb.pin_memory()
        xb = xb.to(device, non_blocking=True)
        yb = yb.to(device, non_blocking=True)
        if augment:
            xb = augment_batch(xb, generator=generator, pad=pad, flip=flip)
        yield to_float(xb), yb
