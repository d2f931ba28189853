"""Evaluation: subsets that represent every class, no silent numbers, gradient-masking flags."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn import datasets as sklearn_datasets
from torch import nn

from robprune.config import EvalConfig, ResolvedThreat
from robprune.data import DataSplits, TensorSplit
from robprune.evaluation.accuracy import accuracy_under, evaluate
from robprune.trial.subsets import epoch_subset, limited_test_split

CPU = torch.device("cpu")


def _digits_by_class() -> TensorSplit:
    """scikit-learn's digits stored class by class, as Tiny-ImageNet's folders are."""
    bunch = sklearn_datasets.load_digits()
    order = np.argsort(bunch.target, kind="stable")
    x = torch.tensor(bunch.images[order], dtype=torch.float32).div_(16.0).unsqueeze(1)
    return TensorSplit(x=x, y=torch.tensor(bunch.target[order], dtype=torch.long))


def _splits(split: TensorSplit) -> DataSplits:
    return DataSplits(
        name="digits-by-class",
        train=split,
        val=split,
        test=split,
        num_classes=10,
        input_shape=(1, 8, 8),
        mean=(0.5,),
        std=(0.25,),
        augment=False,
    )


def test_subsets_are_stratified_on_a_class_ordered_data_set():
    data = _splits(_digits_by_class())
    assert data.val.y[:200].unique().numel() <= 2  # the first 200 hold one or two classes
    for subset in (
        epoch_subset(data, 200, seed=0),
        limited_test_split(EvalConfig(test_limit=200), data),
    ):
        counts = torch.bincount(subset.y, minlength=10)
        assert len(subset) == 200 and counts.min() >= 19 and counts.max() <= 21
    again = epoch_subset(data, 200, seed=0)
    assert torch.equal(again.y, epoch_subset(data, 200, seed=0).y)  # fixed seed
    assert torch.equal(again.x, epoch_subset(data, 200, seed=0).x)
    assert not torch.equal(again.x, epoch_subset(data, 200, seed=1).x)  # a draw, not a slice
    assert epoch_subset(data, 10_000, seed=0) is data.val  # smaller than asked: all of it


def test_accuracy_of_an_empty_split_is_an_error():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    empty = TensorSplit(x=torch.zeros(0, 1, 8, 8), y=torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty split"):
        accuracy_under(model, empty, None, batch_size=8, device=CPU)


class _MaskedGradient(nn.Module):
    """A classifier behind a straight step: every input gradient is exactly zero."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(torch.round(x * 2) / 2)  # round() has zero gradient everywhere


def _trained(split: TensorSplit) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = F.cross_entropy(model(split.x), split.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_gradient_masking_flags_fire_on_a_masking_model_and_not_on_a_plain_one():
    split = _digits_by_class()
    subset = epoch_subset(_splits(split), 300, seed=0)
    plain = _trained(split)
    masked = _MaskedGradient(plain).eval()

    def run(model):
        return evaluate(
            model,
            subset,
            ["fgsm", "pgd10"],
            threat=ResolvedThreat(norm="linf", epsilon=0.1, step_size=0.025),
            batch_size=128,
            device=CPU,
        )

    honest, masking = run(plain), run(masked)
    assert masking.clean_acc > 0.5  # the step layer keeps the classifier useful
    assert masking.accuracy("fgsm") == masking.clean_acc  # a zero gradient cannot move it
    assert masking.accuracy("pgd10") > masking.clean_acc - 0.05  # only its random start does
    assert any("suspiciously flat loss" in w and "fgsm" in w for w in masking.warnings)
    assert honest.accuracy("pgd10") < honest.clean_acc - 0.2
    assert not any("flat loss" in w for w in honest.warnings)
