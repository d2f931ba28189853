"""Batches: iteration, augmentation, the tensor split, uint8 to float."""

from __future__ import annotations

import pytest
import torch

from robprune.data import (
    TensorSplit,
    augment_batch,
    iterate_batches,
    load_data,
    to_float,
)
from tests.support.requirements import cuda_only

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
