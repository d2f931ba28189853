"""Ratio allocation at an equal budget, MRS, and every criterion through Torch-Pruning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robprune.pruning import (
    CRITERIA,
    RATIO_RULES,
    AllocationParams,
    build_group_model,
    default_ignored_layers,
    module_robust_sensitivity,
    prune_model,
    solve_ratios,
    zero_mrs_warnings,
    zscore_weights,
)
from tests.support.trials import seeded_model


def _model(arch: str = "small_cnn", width: float | None = None, shape=(1, 8, 8)) -> nn.Module:
    return seeded_model(arch, width=width, shape=shape)


def _calib(shape=(1, 8, 8), n=32):
    g = torch.Generator().manual_seed(0)
    return torch.rand((n, *shape), generator=g), torch.randint(0, 10, (n,), generator=g)


def test_zscore_rule_large_temperature_is_uniform_and_small_concentrates():
    mrs = np.array([0.1, 0.5, 2.0, 0.05])
    assert np.allclose(zscore_weights(mrs, 1e6), 1.0, atol=1e-4)
    w = zscore_weights(mrs, 0.01)
    assert w.argmax() == mrs.argmin() and w.max() == pytest.approx(len(mrs), rel=1e-2)
    assert zscore_weights(mrs, 1.0).sum() == pytest.approx(len(mrs))


def test_bisection_meets_budget_and_reports_unreachable():
    weights = np.array([1.0, 2.0, 0.5])

    def removed(r):  # equal-size layers: removed fraction is the mean ratio
        return float(np.mean(r))

    family = RATIO_RULES["mrs_zscore"].family(weights, AllocationParams(), 0.9)
    ratios = solve_ratios(family, removed, target=0.4)
    assert removed(ratios) == pytest.approx(0.4, abs=1e-6)
    assert ratios.max() <= 0.9
    from robprune.errors import TrialFailed

    with pytest.raises(TrialFailed, match="unreachable with max_layer_ratio 0.9"):
        solve_ratios(family, removed, target=0.95)


@pytest.mark.parametrize("rule", sorted(RATIO_RULES))
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
        allocation=AllocationParams(temperature=0.5),
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
        allocation=AllocationParams(temperature=0.2),
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
        rule="global" if criterion == "lamp" else "uniform",  # lamp is refused per layer
        max_ratio=0.9,
        layer_mrs=None,
        calib=_calib(),
        seed=0,
    )
    assert out.achieved_sparsity == pytest.approx(0.5, abs=0.01)
    assert all(p.grad is None for p in model.parameters())


class _OneGroup(nn.Module):
    """conv1 (unprunable: first) -> conv2 -> BN -> pool -> fc (unprunable: classifier).

    The only prunable group is conv2's 16 output channels (conv2 out, bn2, fc in). Weight
    norms are scaled per channel independently of the BN scales, and BN biases are positive so
    no channel is dead (a dead channel scores 0 under every gradient criterion).
    """

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 16, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)
        with torch.no_grad():
            self.bn2.weight.uniform_(0.5, 1.5)
            self.bn2.bias.uniform_(0.1, 0.5)
            self.conv2.weight.mul_(torch.rand(16, 1, 1, 1) * 2.5 + 0.5)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


def _expected_scores(model: _OneGroup, calib) -> dict[str, torch.Tensor]:
    """Each criterion's channel score written out from its definition (Torch-Pruning's group
    conventions: members conv2-out, bn2, fc-in; ranking only, so sums stand for means)."""
    x, y = calib
    w2 = model.conv2.weight.detach().flatten(1)
    gamma = model.bn2.weight.detach()
    w3 = model.fc.weight.detach().t()  # [channel, classes]
    params = (model.conv2.weight, model.bn2.weight, model.fc.weight)
    batch = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    g2, _, g3 = (g.flatten(1) if i == 0 else g for i, g in enumerate(batch))
    per_sample = [
        torch.autograd.grad(F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]), params)
        for i in range(min(64, len(x)))
    ]
    h2, hg, h3 = (torch.stack([s[k] for s in per_sample]).pow(2).mean(0) for k in range(3))
    return {
        "l1": w2.abs().sum(1) + gamma.abs() + w3.abs().sum(1),
        "l2": w2.pow(2).sum(1) + gamma.pow(2) + w3.pow(2).sum(1),
        "lamp_layer": w2.pow(2).sum(1),  # the root layer alone (LAMP is monotone within it)
        "bn_scale": gamma.abs(),
        # Torch-Pruning's Taylor skips BatchNorm (its BN branch tests for GroupNorm)
        "taylor": (w2 * g2).abs().sum(1) + (w3 * g3.t()).abs().sum(1),
        # OBD: w^2 times the mean per-sample squared gradient, summed over the group
        "hessian": (w2.pow(2) * h2.flatten(1)).sum(1)
        + gamma.pow(2) * hg
        + (w3.pow(2) * h3.t()).sum(1),
    }


def _kept_channels(original: _OneGroup, pruned: _OneGroup) -> frozenset[int]:
    rows = original.conv2.weight.detach().flatten(1)
    return frozenset(
        int((rows - r).abs().sum(1).argmin()) for r in pruned.conv2.weight.detach().flatten(1)
    )


def test_every_criterion_selects_its_own_channels():
    """Each criterion keeps the channels its definition ranks highest, and no two criteria
    keep the same set, except lamp and l2: LAMP's normalisation is monotone inside one
    group, so within one group (global ranking over a single group) it ranks as group L2."""
    seed = 0
    g = torch.Generator().manual_seed(0)
    calib = (torch.rand(48, 1, 8, 8, generator=g), torch.randint(0, 10, (48,), generator=g))
    kept = {}
    for criterion in sorted(CRITERIA):
        model = _OneGroup(seed)
        prune_model(
            model,
            example=torch.rand(2, 1, 8, 8),
            criterion=criterion,
            sparsity=0.5,
            rule="global" if criterion == "lamp" else "uniform",
            max_ratio=0.9,
            layer_mrs=None,
            calib=calib,
            seed=0,
        )
        kept[criterion] = _kept_channels(_OneGroup(seed), model)
    k = len(kept["l1"])
    assert 0 < k < 16 and all(len(v) == k for v in kept.values())
    for name, score in _expected_scores(_OneGroup(seed), calib).items():
        expected = frozenset(score.argsort(descending=True)[:k].tolist())
        assert kept[name] == expected, name
    assert kept["lamp"] == kept["l2"]
    names = [n for n in sorted(CRITERIA) if n != "lamp"]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert kept[a] != kept[b], (a, b)


@pytest.mark.parametrize("estimator", ["first_order", "ascent"])
def test_mrs_estimators_are_positive_and_restore_weights(estimator):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    x, y = _calib()
    steps = 3 if estimator == "ascent" else None
    scores = module_robust_sensitivity(
        model, layers, x, y, estimator=estimator, epsilon=0.1, steps=steps
    )
    assert set(scores) == set(layers)
    assert all(s > 0 for s in scores.values())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())


def test_one_ascent_step_realises_the_first_order_rise():
    """In a small ball one ascent step lands on the ball along the gradient, so each layer's
    loss rise is eps*||theta||*||grad|| up to second order: per-layer values, not a ranking."""
    model = _model()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    x, y = _calib(n=64)
    fo = module_robust_sensitivity(model, layers, x, y, estimator="first_order", epsilon=1e-3)
    asc = module_robust_sensitivity(model, layers, x, y, estimator="ascent", epsilon=1e-3, steps=1)
    assert len(set(fo.values())) == len(fo)  # the layers really differ
    for name in layers:
        assert asc[name] == pytest.approx(fo[name], rel=0.05), name


def test_first_order_takes_no_steps_and_ascent_needs_them():
    model = _model()
    layers = {"classifier": model.classifier}
    x, y = _calib()
    with pytest.raises(ValueError, match="'first_order' takes no steps"):
        module_robust_sensitivity(
            model, layers, x, y, estimator="first_order", epsilon=0.1, steps=5
        )
    with pytest.raises(ValueError, match="'ascent' needs steps"):
        module_robust_sensitivity(model, layers, x, y, estimator="ascent", epsilon=0.1)


@pytest.mark.parametrize("estimator", ["first_order", "ascent"])
def test_layer_without_gradient_is_flagged_and_all_zero_is_an_error(estimator):
    model = _model()
    unused = nn.Linear(4, 4)  # never called in forward: no gradient reaches it
    layers = {"classifier": model.classifier, "unused": unused}
    x, y = _calib()
    steps = 2 if estimator == "ascent" else None
    scores = module_robust_sensitivity(
        model, layers, x, y, estimator=estimator, epsilon=0.1, steps=steps
    )
    assert scores["unused"] == 0 and scores["classifier"] > 0
    warnings = zero_mrs_warnings(scores)
    assert len(warnings) == 1 and "unused" in warnings[0]
    with pytest.raises(ValueError, match="MRS is 0 for every layer"):
        module_robust_sensitivity(
            model, {"unused": unused}, x, y, estimator=estimator, epsilon=0.1, steps=steps
        )
