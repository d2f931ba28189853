"""A small CNN trained in seconds on scikit-learn's digits (1x8x8, pixels in [0,1]): the model
the attack tests attack, trained once per test process."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from sklearn import datasets as sklearn_datasets
from torch import nn

from robprune import attacks as A

EPS = 0.1  # the digits default (config.threat_defaults)
EPS_L2 = 0.5
N_TEST = 300


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 16, 64),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(64, 10),
    )


@functools.cache
def trained_digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The trained model (in eval mode) and the held-out test images and labels."""
    data = sklearn_datasets.load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    y = torch.tensor(data.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(x), generator=gen)
    test, train = perm[:N_TEST], perm[N_TEST:]
    torch.manual_seed(0)
    model = cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(6):
        order = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(order), 128):
            idx = order[i : i + 128]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    return model, x[test], y[test]


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return A.robust_accuracy(model, x, y, None)
