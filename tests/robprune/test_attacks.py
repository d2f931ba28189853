"""Attacks' behaviour on a small CNN trained on digits: the budget and pixel range, the order
of strength, restarts, the model's mode and gradients left alone, determinism, the registry.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robprune import attacks as A
from robprune.errors import ConfigError
from tests.support.digits_cnn import EPS, EPS_L2, accuracy, seeded, trained_digits


@pytest.fixture(scope="module")
def digits() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    return trained_digits()


@pytest.fixture(scope="module")
def accuracies(digits) -> dict[str, float]:
    model, x, y = digits
    out = {"clean": accuracy(model, x, y)}
    for name in ("fgsm", "pgd20", "cw20", "apgd_ce", "apgd_t25"):
        out[name] = A.robust_accuracy(
            model, x, y, A.build_attack(name, epsilon=EPS), generator=seeded()
        )
    return out


# (1) budget and pixel range ---------------------------------------------------------------

BOUNDED = [
    ("fgsm", "linf"),
    ("pgd5", "linf"),
    ("cw5", "linf"),
    ("apgd_ce10", "linf"),
    ("apgd_t10", "linf"),
    ("pgd5_l2", "l2"),
    ("fgsm", "l2"),
    ("cw5", "l2"),
    ("apgd_ce10", "l2"),
    ("apgd_t10", "l2"),
]


@pytest.mark.parametrize(("name", "norm"), BOUNDED)
def test_within_budget_and_pixel_range(digits, name, norm):
    model, x, y = digits
    x, y = x[:64], y[:64]
    eps = EPS if norm == "linf" else EPS_L2
    attack = A.build_attack(name, epsilon=eps, norm=norm)
    assert attack.norm == norm
    x_adv = attack(model, x, y, generator=seeded())
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    delta = (x_adv - x).flatten(1)
    if norm == "linf":
        assert delta.abs().max() <= eps + 1e-6
    else:
        assert delta.norm(dim=1).max() <= eps + 1e-5


def test_fgsm_random_start_and_projection_helpers(digits):
    model, x, y = digits
    x_adv = A.fgsm(model, x, y, epsilon=EPS, random_start=True, generator=seeded())
    assert (x_adv - x).abs().max() <= EPS + 1e-6 and 0 <= x_adv.min() <= x_adv.max() <= 1
    grad = torch.randn(x.shape, generator=seeded())
    for norm, eps in (("linf", EPS), ("l2", EPS_L2)):
        stepped = A.project_step(x, grad, x, epsilon=eps, step_size=2 * eps, norm=norm)
        delta = (stepped - x).flatten(1)
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
        assert size.max() <= eps + 1e-5 and stepped.min() >= 0 and stepped.max() <= 1
        assert torch.equal(A.project(stepped, x, epsilon=eps, norm=norm), stepped)


def test_apgd_t_with_few_classes(digits):
    model, x, y = digits

    class FirstThree(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return z[:, :3]

    three = nn.Sequential(model, FirstThree())
    keep = y < 3
    x_adv = A.apgd_targeted(three, x[keep], y[keep], epsilon=EPS, steps=10, generator=seeded())
    assert (x_adv - x[keep]).abs().max() <= EPS + 1e-6


# (2) strength ordering ----------------------------------------------------------------------


def test_attacks_reduce_accuracy_in_order(accuracies):
    acc = accuracies
    assert acc["clean"] > 0.9
    assert acc["fgsm"] < acc["clean"] - 0.2
    assert acc["pgd20"] <= acc["fgsm"] + 0.01
    assert acc["cw20"] <= acc["fgsm"] + 0.01
    assert acc["apgd_ce"] <= acc["pgd20"] + 0.01
    assert acc["apgd_t25"] <= acc["pgd20"] + 0.01


def test_restarts_keep_worst_case(digits):
    model, x, y = digits
    kwargs = {"epsilon": EPS, "step_size": EPS / 4, "steps": 5}
    one = A.pgd(model, x, y, generator=seeded(), **kwargs)
    three = A.pgd(model, x, y, restarts=3, generator=seeded(), **kwargs)
    with torch.no_grad():
        ok_one = model(one).argmax(1) == y
        ok_three = model(three).argmax(1) == y
    # The first restart draws what the single run draws, so every example broken there stays
    # broken, and later restarts may break more.
    assert not (ok_three & ~ok_one).any()
    assert ok_three.sum() <= ok_one.sum()


# (3) model mode and parameter gradients -----------------------------------------------------

ALL_NAMES = ["fgsm", "pgd3", "pgd3_l2", "cw3", "apgd_ce5", "apgd_t5"]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_mode_restored_and_no_param_grads(digits, name):
    model, x, y = digits
    attack = A.build_attack(name, epsilon=EPS)
    model.train()
    model[1].eval()  # a deliberately mixed model comes back mixed
    flags = [m.training for m in model.modules()]
    try:
        attack(model, x[:32], y[:32], generator=seeded())
        assert [m.training for m in model.modules()] == flags
        assert all(p.grad is None for p in model.parameters())
        # existing gradients (mid training step) are left untouched
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        attack(model, x[:32], y[:32], generator=seeded())
        assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    finally:
        for p in model.parameters():
            p.grad = None
        model.eval()


def test_mode_restored_on_error():
    class Boom(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert not self.training
            raise RuntimeError("boom")

    model = Boom().train()
    with pytest.raises(RuntimeError, match="boom"):
        A.pgd(
            model,
            torch.rand(2, 4),
            torch.zeros(2, dtype=torch.long),
            epsilon=0.1,
            step_size=0.01,
            steps=2,
        )
    assert model.training and model.lin.training


def test_works_inside_no_grad(digits):
    model, x, y = digits
    with torch.no_grad():
        x_adv = A.pgd(
            model, x[:16], y[:16], epsilon=EPS, step_size=EPS / 4, steps=3, random_start=False
        )
    assert (x_adv - x[:16]).abs().max() > 0


# (4) torchattacks reference -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["pgd5", "pgd5_l2", "cw5", "apgd_ce10", "apgd_t5"])
def test_deterministic_given_generator(digits, name):
    model, x, y = digits
    x, y = x[:64], y[:64]
    attack = A.build_attack(name, epsilon=EPS_L2 if name.endswith("l2") else EPS)
    first = attack(model, x, y, generator=seeded(7))
    assert torch.equal(first, attack(model, x, y, generator=seeded(7)))
    if name.startswith("pgd"):
        assert not torch.equal(first, attack(model, x, y, generator=seeded(8)))


def test_fgsm_rs_deterministic(digits):
    model, x, y = digits
    run = [
        A.fgsm(model, x, y, epsilon=EPS, random_start=True, generator=seeded(3)) for _ in range(2)
    ]
    assert torch.equal(run[0], run[1])


# (6) registry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "pgd",
        "pgd0",
        "pgd010",
        "apgd_ce0",
        "apgd_t0",
        "cw0",
        "pgdx",
        "PGD20",
        "fgsm10",
        "apgd",
        "apgd_x",
        "cw",
        "pgd10_linf",
        "",
        "autoattack",
    ],
)
def test_unknown_names_raise_value_error(name):
    """The registry names its own argument; the config layer adds the key path (test_config)."""
    with pytest.raises(ValueError) as err:
        A.build_attack(name, epsilon=EPS)
    assert not isinstance(err.value, ConfigError)
    assert "pgd{K}" in str(err.value) and "apgd_t" in str(err.value)


def test_bad_threat_values_raise_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="^epsilon must be"):
        A.build_attack("pgd10", epsilon=0.0)
    with pytest.raises(ValueError, match="^norm must be"):
        A.build_attack("pgd10", epsilon=EPS, norm="l1")


def test_registry_configs():
    cfg = A.build_attack("pgd20", epsilon=8 / 255).config()
    assert cfg == {
        "name": "pgd20",
        "norm": "linf",
        "epsilon": 8 / 255,
        "step_size": 2 / 255,
        "steps": 20,
        "restarts": 1,
        "random_start": True,
        "loss": "ce",
    }
    assert A.build_attack("pgd10", epsilon=0.1, step_size=0.01).step_size == 0.01
    assert A.build_attack("pgd7_l2", epsilon=0.5).config()["norm"] == "l2"
    assert A.build_attack("cw30", epsilon=0.1).config()["loss"] == "cw"
    assert A.build_attack("fgsm", epsilon=0.1).config()["steps"] == 1
    assert A.build_attack("apgd_ce", epsilon=0.1).steps == 100
    assert A.build_attack("apgd_ce50", epsilon=0.1).steps == 50
    t_cfg = A.build_attack("apgd_t", epsilon=0.1).config()
    assert t_cfg["loss"] == "dlr_targeted" and t_cfg["targets"] == 9
    assert set(A.ATTACKS) >= {"fgsm", "pgd{K}", "pgd{K}_l2", "cw{K}", "apgd_ce", "apgd_t"}


def test_robust_accuracy_uint8_and_batching(digits):
    model, x, y = digits
    x_u8 = (x * 255).round().to(torch.uint8)
    clean_u8 = A.robust_accuracy(model, x_u8, y, None, batch_size=64)
    assert clean_u8 == A.robust_accuracy(model, x_u8.float() / 255, y, None, batch_size=1000)
    attack = A.build_attack("pgd3", epsilon=EPS)
    assert A.robust_accuracy(model, x_u8, y, attack, batch_size=77) <= clean_u8


def test_losses():
    logits = torch.tensor([[3.0, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, 0.5]])
    y = torch.tensor([0, 0])
    torch.testing.assert_close(A.cw_margin_loss(logits, y), torch.tensor([-2.0, 2.0]))
    torch.testing.assert_close(A.dlr_loss(logits, y), torch.tensor([-2.0 / 3.0, 2.0 / 1.5]))
    target = torch.tensor([1, 2])
    torch.testing.assert_close(
        A.dlr_targeted_loss(logits, y, target), torch.tensor([-2.0 / 3.5, 1.0 / 1.75])
    )
    with pytest.raises(ValueError, match="unknown attack loss"):
        A.get_loss("kl")
