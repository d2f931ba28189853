"""Each attack against torchattacks 3.5.1, the reference (test-only; `pip install --no-deps
torchattacks==3.5.1`), on a small CNN trained on digits.

Randomised attacks are compared with the same random numbers: torchattacks draws from the
global CPU generator after `torch.manual_seed(seed)`, ours from a `torch.Generator` seeded the
same way, in the same order and shapes, so robust accuracies agree to within one example
(and exactly in practice). Exceptions, documented where they occur: torchattacks' PGD-L2
divides mean-reduced gradients by (norm + 1e-10), which shortens its step on very confident
examples, so only the robust accuracy is compared for L2; torchattacks has no CW-L-inf, so CW is
compared with torchattacks.PGD on a model whose two logits are (0, CW margin): the CE of
(0, m) is softplus(m), monotone in m, so every sign step is the same.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robprune import attacks as A
from tests.support.digits_cnn import EPS, EPS_L2, accuracy, seeded, trained_digits


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    return trained_digits()


@pytest.fixture(scope="module")
def torchattacks():
    """The reference implementations (installed by `make setup`, test-only)."""
    import torchattacks as module

    return module


def _ref(attack, x, y, seed=0):
    torch.manual_seed(seed)
    return attack(x, y)


def _informative(model, x, y, x_ref, clean_y=None) -> float:
    """The reference's robust accuracy, asserted to lie well inside (0, clean): a comparison
    at 0 vs 0 (or at clean vs clean) would pass whatever either attack did."""
    clean = accuracy(model, x, y if clean_y is None else clean_y)
    acc = accuracy(model, x_ref, y)
    assert 0.05 < acc < clean - 0.05, (acc, clean)
    return acc


def _same_examples_broken(model, ours, theirs, y, tolerance: float = 0.02) -> None:
    """Per example, not only on average: both attacks break (nearly) the same examples."""
    with torch.no_grad():
        a = model(ours).argmax(1) == y
        b = model(theirs).argmax(1) == y
    assert (a != b).float().mean() <= tolerance


def test_pgd_matches_torchattacks(digits, torchattacks):
    model, x, y = digits
    ref = torchattacks.PGD(model, eps=EPS, alpha=EPS / 4, steps=20, random_start=False)
    ours = A.pgd(model, x, y, epsilon=EPS, step_size=EPS / 4, steps=20, random_start=False)
    torch.testing.assert_close(ours, ref(x, y), atol=1e-5, rtol=0)
    # with a random start: same draws, so the same points and accuracy
    ref = torchattacks.PGD(model, eps=EPS, alpha=EPS / 4, steps=20, random_start=True)
    ours = A.pgd(model, x, y, epsilon=EPS, step_size=EPS / 4, steps=20, generator=seeded())
    theirs = _ref(ref, x, y)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    assert abs(accuracy(model, ours, y) - _informative(model, x, y, theirs)) <= 0.005


def test_fgsm_matches_torchattacks(digits, torchattacks):
    model, x, y = digits
    ours = A.fgsm(model, x, y, epsilon=EPS)
    torch.testing.assert_close(ours, torchattacks.FGSM(model, eps=EPS)(x, y), atol=1e-5, rtol=0)


def test_pgd_l2_matches_torchattacks(digits, torchattacks):
    model, x, y = digits
    ref = torchattacks.PGDL2(model, eps=EPS_L2, alpha=EPS_L2 / 4, steps=20, random_start=True)
    ours = A.pgd(
        model, x, y, epsilon=EPS_L2, step_size=EPS_L2 / 4, steps=20, norm="l2", generator=seeded()
    )
    theirs = _ref(ref, x, y)
    assert abs(accuracy(model, ours, y) - _informative(model, x, y, theirs)) <= 0.005
    _same_examples_broken(model, ours, theirs, y)
    delta = (ours - x).flatten(1).norm(dim=1)
    assert delta.max() <= EPS_L2 + 1e-5 and delta.mean() > 0.5 * EPS_L2


class _MarginLogits(nn.Module):
    """Two logits (0, CW margin) for fixed labels: torchattacks' PGD then ascends the margin."""

    def __init__(self, model: nn.Module, y: torch.Tensor):
        super().__init__()
        self.model, self.y = model, y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.model(x)
        true = z.gather(1, self.y[:, None]).squeeze(1)
        other = z.masked_fill(F.one_hot(self.y, z.shape[1]).bool(), float("-inf")).amax(1)
        return torch.stack([torch.zeros_like(true), other - true], dim=1)


def test_cw_matches_torchattacks_pgd_on_margin(digits, torchattacks):
    model, x, y = digits
    wrapped = _MarginLogits(model, y).eval()
    zeros = torch.zeros_like(y)
    ref = torchattacks.PGD(wrapped, eps=EPS, alpha=EPS / 4, steps=20, random_start=False)
    ours = A.pgd(
        model, x, y, epsilon=EPS, step_size=EPS / 4, steps=20, random_start=False, loss="cw"
    )
    torch.testing.assert_close(ours, ref(x, zeros), atol=1e-5, rtol=0)
    ref = torchattacks.PGD(wrapped, eps=EPS, alpha=EPS / 4, steps=20, random_start=True)
    ours = A.build_attack("cw20", epsilon=EPS)(model, x, y, generator=seeded())
    theirs = _ref(ref, x, zeros)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)  # same draws, same points
    assert abs(accuracy(model, ours, y) - _informative(model, x, y, theirs)) <= 0.005


def test_apgd_ce_matches_torchattacks(digits, torchattacks):
    model, x, y = digits
    ref = torchattacks.APGD(model, norm="Linf", eps=EPS, steps=25, n_restarts=1, seed=0, loss="ce")
    ours = A.build_attack("apgd_ce25", epsilon=EPS)(model, x, y, generator=seeded())
    theirs = ref(x, y)
    assert abs(accuracy(model, ours, y) - _informative(model, x, y, theirs)) <= 0.005
    _same_examples_broken(model, ours, theirs, y)


def test_apgd_t_matches_torchattacks(digits, torchattacks):
    model, x, y = digits
    # torchattacks targets the n_classes - 1 most likely wrong classes: 3 targets here, to
    # keep the test short; the registry's apgd_t uses 9 as AutoAttack does.
    ref = torchattacks.APGDT(
        model, norm="Linf", eps=EPS, steps=25, n_restarts=1, seed=0, n_classes=4
    )
    ours = A.apgd_targeted(model, x, y, epsilon=EPS, steps=25, num_targets=3, generator=seeded())
    theirs = ref(x, y)
    assert abs(accuracy(model, ours, y) - _informative(model, x, y, theirs)) <= 0.005
    _same_examples_broken(model, ours, theirs, y)


# (5) determinism ----------------------------------------------------------------------------
