"""Ratio allocation at an equal budget, MRS, and every criterion through Torch-Pruning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robprune.models import create_model
from robprune.pruning import (
    CRITERIA,
    build_group_model,
    default_ignored_layers,
    module_robust_sensitivity,
    mrs_weights,
    prune_model,
    solve_ratios,
)


def _model(arch: str = "small_cnn", width: float | None = None, shape=(1, 8, 8)) -> nn.Module:
    torch.manual_seed(0)
    return create_model(
        arch,
        num_classes=10,
        input_shape=shape,
        mean=(0.5,) * shape[0],
        std=(0.25,) * shape[0],
        width=width,
    ).eval()


def _calib(shape=(1, 8, 8), n=32):
    g = torch.Generator().manual_seed(0)
    return torch.rand((n, *shape), generator=g), torch.randint(0, 10, (n,), generator=g)


def test_large_temperature_is_uniform_and_small_concentrates():
    mrs = np.array([0.1, 0.5, 2.0, 0.05])
    assert np.allclose(mrs_weights(mrs, 1e6), 1.0, atol=1e-4)
    w = mrs_weights(mrs, 0.01)
    assert w.argmax() == mrs.argmin() and w.max() == pytest.approx(len(mrs), rel=1e-2)
    assert mrs_weights(mrs, 1.0).sum() == pytest.approx(len(mrs))


def test_bisection_meets_budget_and_reports_unreachable():
    weights = np.array([1.0, 2.0, 0.5])

    def removed(r):  # equal-size layers: removed fraction is the mean ratio
        return float(np.mean(r))

    ratios = solve_ratios(weights, removed, target=0.4, max_ratio=0.9)
    assert removed(ratios) == pytest.approx(0.4, abs=1e-6)
    assert ratios.max() <= 0.9
    from robprune.errors import TrialFailed

    with pytest.raises(TrialFailed, match="unreachable"):
        solve_ratios(weights, removed, target=0.95, max_ratio=0.9)


@pytest.mark.parametrize("rule", ["uniform", "mrs"])
@pytest.mark.parametrize("sparsity", [0.3, 0.7])
def test_rules_meet_the_same_budget(rule, sparsity):
    model = _model()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    mrs = {n: float(i + 1) for i, n in enumerate(names)}
    out = prune_model(
        model,
        example=torch.rand(2, 1, 8, 8),
        criterion="l1",
        sparsity=sparsity,
        rule=rule,
        temperature=0.5,
        max_ratio=0.9,
        layer_mrs=mrs,
        calib=None,
        seed=0,
    )
    assert out.achieved_sparsity == pytest.approx(sparsity, abs=0.01)
    assert out.params < out.params_dense and out.flops < out.flops_dense
    assert not out.warnings
    first, last = out.layers[0], out.layers[-1]
    assert first["channels_after"] == first["channels_before"]  # first conv untouched
    assert last["channels_after"] == last["channels_before"]  # classifier untouched
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_small_temperature_prunes_low_mrs_layers_more():
    model = _model()
    example = torch.rand(2, 1, 8, 8)
    _, gm = build_group_model(model, example, default_ignored_layers(model))
    members = [g.members[0] for g in gm.groups]
    mrs = {name: 10.0**i for i, name in enumerate(members)}  # first group least sensitive
    out = prune_model(
        model,
        example=example,
        criterion="l1",
        sparsity=0.4,
        rule="mrs",
        temperature=0.2,
        max_ratio=0.9,
        layer_mrs=mrs,
        calib=None,
        seed=0,
    )
    ratio = {row["layer"]: row["ratio"] for row in out.layers}
    ratios = [ratio[m] for m in members]
    assert ratios[0] > ratios[-1]
    assert ratios == sorted(ratios, reverse=True)


def test_coupled_layers_share_mrs_and_ratio():
    model = _model("resnet18", width=0.125, shape=(3, 16, 16))
    example = torch.rand(2, 3, 16, 16)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    rng = np.random.default_rng(0)
    mrs = {n: float(rng.uniform(0.1, 1.0)) for n in names}
    out = prune_model(
        model,
        example=example,
        criterion="l2",
        sparsity=0.5,
        rule="mrs",
        temperature=1.0,
        max_ratio=0.9,
        layer_mrs=mrs,
        calib=None,
        seed=0,
    )
    assert out.achieved_sparsity == pytest.approx(0.5, abs=0.01)
    rows = {r["layer"]: r for r in out.layers}
    # a residual stage's convs and its shortcut are one group: same MRS, same ratio
    stage = [
        n
        for n in rows
        if n.startswith("layer2") and ("conv2" in n or "shortcut" in n or "downsample" in n)
    ]
    coupled = [rows[n] for n in stage if rows[n]["ratio"] > 0]
    assert len(coupled) >= 2
    assert len({round(r["mrs"], 12) for r in coupled}) == 1
    assert len({round(r["ratio"], 12) for r in coupled}) == 1


@pytest.mark.parametrize("criterion", sorted(CRITERIA))
def test_every_criterion_prunes_to_budget(criterion):
    model = _model()
    out = prune_model(
        model,
        example=torch.rand(2, 1, 8, 8),
        criterion=criterion,
        sparsity=0.5,
        rule="uniform",
        temperature=1.0,
        max_ratio=0.9,
        layer_mrs=None,
        calib=_calib(),
        seed=0,
    )
    assert out.achieved_sparsity == pytest.approx(0.5, abs=0.01)
    assert all(p.grad is None for p in model.parameters())


def test_criteria_choose_different_channels():
    kept = {}
    for criterion in ("l1", "random", "taylor"):
        model = _model()
        prune_model(
            model,
            example=torch.rand(2, 1, 8, 8),
            criterion=criterion,
            sparsity=0.5,
            rule="uniform",
            temperature=1.0,
            max_ratio=0.9,
            layer_mrs=None,
            calib=_calib(),
            seed=0,
        )
        kept[criterion] = (
            next(m for m in model.modules() if isinstance(m, nn.Conv2d) and m.in_channels != 1)
            .weight.detach()
            .clone()
        )
    assert not torch.equal(kept["l1"], kept["random"])
    assert not torch.equal(kept["l1"], kept["taylor"])


@pytest.mark.parametrize("estimator", ["first_order", "ascent"])
def test_mrs_estimators_are_positive_and_restore_weights(estimator):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    x, y = _calib()
    scores = module_robust_sensitivity(
        model, layers, x, y, estimator=estimator, epsilon=0.1, steps=3
    )
    assert set(scores) == set(layers)
    assert all(s > 0 for s in scores.values())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_ascent_and_first_order_agree_on_ranking_roughly():
    model = _model()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    x, y = _calib(n=64)
    fo = module_robust_sensitivity(
        model, layers, x, y, estimator="first_order", epsilon=0.01, steps=1
    )
    asc = module_robust_sensitivity(model, layers, x, y, estimator="ascent", epsilon=0.01, steps=1)
    # for a small ball, one ascent step realises roughly the first-order rise (within 2.5x
    # step overshoot before projection): same ordering of the most and least sensitive layer
    order_fo = sorted(fo, key=fo.get)
    order_asc = sorted(asc, key=asc.get)
    assert order_fo[-1] == order_asc[-1]
