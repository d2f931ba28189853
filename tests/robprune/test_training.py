"""Training objectives against the reference formulas, and the learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robprune import attacks
from robprune.training import AdversarialSetting
from robprune.training.losses import objective, trades_examples
from robprune.training.schedules import build_scheduler, lr_factor


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 64, 10),
    )


def _batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def _adv(norm: str = "linf", beta: float = 6.0) -> AdversarialSetting:
    eps = 0.1 if norm == "linf" else 0.5
    return AdversarialSetting(epsilon=eps, step_size=eps / 4, steps=3, norm=norm, beta=beta)


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(5)


# Reference formulas, written out as in the authors' code (TRADES: yaodongyu/TRADES,
# trades.py; MART: YisenWang/MART, mart.py), not by calling robprune.


def _trades_reference(model, x, x_adv, y, beta):
    logits_nat, logits_adv = model(x), model(x_adv)
    kl = nn.KLDivLoss(reduction="sum")(
        F.log_softmax(logits_adv, dim=1), F.softmax(logits_nat, dim=1)
    )
    return F.cross_entropy(logits_nat, y) + beta * kl / x.shape[0]


def _mart_reference(model, x, x_adv, y, beta):
    logits, logits_adv = model(x), model(x_adv)
    adv_probs = F.softmax(logits_adv, dim=1)
    tmp1 = torch.argsort(adv_probs, dim=1)[:, -2:]
    new_y = torch.where(tmp1[:, -1] == y, tmp1[:, -2], tmp1[:, -1])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(
        torch.log(1.0001 - adv_probs + 1e-12), new_y
    )
    nat_probs = F.softmax(logits, dim=1)
    true_probs = torch.gather(nat_probs, 1, y.unsqueeze(1)).squeeze()
    kl = nn.KLDivLoss(reduction="none")(torch.log(adv_probs + 1e-12), nat_probs)
    loss_robust = torch.sum(torch.sum(kl, dim=1) * (1.0000001 - true_probs)) / x.shape[0]
    return loss_adv + float(beta) * loss_robust


@pytest.mark.parametrize("beta", [0.0, 1.0, 6.0])
def test_trades_matches_reference_and_beta_reaches_the_loss(beta):
    model, (x, y) = _model().eval(), _batch()
    adv = _adv(beta=beta)
    ours = objective("trades")(model, x, y, adv, _gen())
    x_adv = trades_examples(model, x, adv=adv, generator=_gen())
    assert (x_adv - x).abs().max() <= adv.epsilon + 1e-6
    ref = _trades_reference(model, x, x_adv, y, beta)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 1.0, 6.0])
def test_mart_matches_reference_and_beta_reaches_the_loss(beta):
    model, (x, y) = _model().eval(), _batch()
    adv = _adv(beta=beta)
    ours = objective("mart")(model, x, y, adv, _gen())
    x_adv = attacks.pgd(
        model,
        x,
        y,
        epsilon=adv.epsilon,
        step_size=adv.step_size,
        steps=adv.steps,
        norm=adv.norm,
        random_start=True,
        generator=_gen(),
    )
    ref = _mart_reference(model, x, x_adv, y, beta)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", ["trades", "mart"])
def test_beta_scales_the_robust_term(method):
    """loss(beta) = loss(0) + beta * R with R > 0: beta is neither dropped nor fixed."""
    model, (x, y) = _model().eval(), _batch()
    loss = {b: objective(method)(model, x, y, _adv(beta=b), _gen()).item() for b in (0, 1, 4)}
    robust = loss[1] - loss[0]
    assert robust > 1e-4
    assert loss[4] == pytest.approx(loss[0] + 4 * robust, rel=1e-4)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_rs_trains_against_its_threat_norm(norm):
    """Fast AT (Wong et al.) in the trial's norm: random start, one 1.25-eps step, projected."""
    model, (x, y) = _model().eval(), _batch()
    adv = _adv(norm)
    ours = objective("fgsm_rs")(model, x, y, adv, _gen())
    x_adv = attacks.fgsm(
        model,
        x,
        y,
        epsilon=adv.epsilon,
        step_size=1.25 * adv.epsilon,
        random_start=True,
        norm=norm,
        generator=_gen(),
    )
    delta = (x_adv - x).flatten(1)
    if norm == "l2":  # an L2 step is not a sign step: the L-inf radius is not saturated
        assert delta.norm(dim=1).max() <= adv.epsilon + 1e-5
        assert delta.abs().max() < adv.epsilon
    torch.testing.assert_close(ours, F.cross_entropy(model(x_adv), y))


# Schedules ---------------------------------------------------------------------------------


def test_schedules_shape():
    total = 100
    f = {
        s: [lr_factor(s, step=t, total_steps=total, warmup_steps=0) for t in range(total)]
        for s in ("constant", "step", "cosine", "onecycle")
    }
    assert f["constant"] == [1.0] * total
    assert f["step"][49] == 1.0 and f["step"][50] == pytest.approx(0.1)
    assert f["step"][74] == pytest.approx(0.1) and f["step"][75] == pytest.approx(0.01)
    assert f["cosine"][0] == 1.0 and f["cosine"][50] == pytest.approx(0.5)
    assert f["cosine"][99] < 0.01 and f["cosine"] == sorted(f["cosine"], reverse=True)
    assert max(f["onecycle"]) == 1.0 and f["onecycle"].index(1.0) == 30  # default peak at 30%
    assert f["onecycle"][15] == pytest.approx(0.5) and f["onecycle"][99] < 0.02
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_factor("linear", step=0, total_steps=10, warmup_steps=0)


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle"])
def test_warmup_rises_linearly_to_the_peak_for_every_schedule(schedule):
    total, warmup = 100, 10
    f = [lr_factor(schedule, step=t, total_steps=total, warmup_steps=warmup) for t in range(total)]
    rising = f[: warmup + 1]
    assert rising == sorted(rising) and rising[0] < 0.2
    assert max(f) == pytest.approx(1.0)
    assert f[warmup] == pytest.approx(1.0)  # the peak is reached when warm-up ends
    steps = [b - a for a, b in zip(rising, rising[1:], strict=False)]
    assert max(steps) - min(steps) < 1e-9  # linear
    no_warmup = [
        lr_factor(schedule, step=t, total_steps=total, warmup_steps=0) for t in range(total)
    ]
    assert f != no_warmup


def test_scheduler_steps_the_optimizer_lr():
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.2)
    sched = build_scheduler(opt, schedule="onecycle", epochs=4, steps_per_epoch=5, warmup_epochs=2)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(0.2)
    assert lrs.index(max(lrs)) == 10  # peak after the 2 warm-up epochs of 5 steps
    assert math.isclose(lrs[5], 0.1)


@pytest.mark.parametrize(("method", "beta"), [("trades", 3.5), ("mart", 0.25)])
def test_configured_beta_reaches_the_fine_tuning_objective(method, beta):
    """finetune.<method>.beta travels from the config to the Trainer's threat setting."""
    from robprune.config import parse_trial_config
    from robprune.data import load_data
    from robprune.trial.builders import build_model
    from robprune.trial.finetune import finetune_trainer

    other = "mart" if method == "trades" else "trades"
    config = parse_trial_config(
        {
            "device": "cpu",
            "finetune": {
                "method": method,
                "epochs": 1,
                method: {"beta": beta},
                other: {"beta": 9},
            },
        }
    )
    data = load_data("digits", train_limit=100)
    trainer = finetune_trainer(config, build_model(config.model, data), data, torch.device("cpu"))
    assert trainer is not None and trainer.adversarial.beta == beta
    assert trainer.loss_fn is objective(method)
