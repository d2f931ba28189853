"""Every ratio rule: budget, per-layer ratios, limits, ties, untouched layers.

All on the default offline model (`digits_cnn`, five prunable groups of different sizes) and a
wider copy of it where one channel is less than a point, so "within 1 point" is checkable.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robprune.pruning import (
    RATIO_RULES,
    AllocationParams,
    DamageSetting,
    allocate_ratios,
    build_group_model,
    default_ignored_layers,
    module_robust_sensitivity,
    prune_model,
    scale_aware_weights,
)
from robprune.pruning.allocation import band_offsets
from tests.support.trials import seeded_model

MRS_RULES = [name for name, rule in RATIO_RULES.items() if rule.uses_mrs]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(arch: str = "digits_cnn", width: float | None = None, shape=(1, 8, 8)) -> nn.Module:
    return seeded_model(arch, width=width, shape=shape)


def _group_mrs(model: nn.Module, values) -> tuple[dict[str, float], list]:
    """Layer MRS giving group i the value values[i]; the groups in graph order."""
    _, gm = build_group_model(model, torch.rand(2, 1, 8, 8), default_ignored_layers(model))
    layer_mrs = {}
    for group, value in zip(gm.groups, values, strict=True):
        for member in group.members:
            layer_mrs[member] = float(value)
    return layer_mrs, gm.groups


def _prune(model, rule, sparsity, layer_mrs, **params):
    return prune_model(
        model,
        example=torch.rand(2, 1, 8, 8),
        criterion="l1",
        sparsity=sparsity,
        rule=rule,
        allocation=AllocationParams(**params),
        max_ratio=0.9,
        layer_mrs=layer_mrs,
        calib=None,
        seed=0,
    )


def test_default_model_has_four_or_more_groups_of_different_sizes():
    _, groups = _group_mrs(_model(), [1.0] * 5)
    sizes = [g.channels for g in groups]
    assert len(groups) >= 4 and len(set(sizes)) == len(sizes)


@pytest.mark.parametrize("rule", sorted(RATIO_RULES))
@pytest.mark.parametrize("sparsity", [0.3, 0.7])
def test_every_rule_meets_budget_and_per_layer_ratios_within_a_point(rule, sparsity):
    model = _model(width=5.0)  # 120..480 channels per group: one channel < 1 point
    layer_mrs, groups = _group_mrs(model, [0.9, 1.1, 0.4, 2.5, 1.6])
    out = _prune(model, rule, sparsity, layer_mrs, temperature=0.5, band=0.2)
    assert out.achieved_sparsity == pytest.approx(sparsity, abs=0.01)
    assert not out.warnings
    rows = {r["layer"]: r for r in out.layers}
    for group in groups:
        row = rows[group.members[0]]
        assert abs(row["ratio"] - row["ratio_planned"]) <= 0.01 + 1e-9
        assert row["ratio"] == pytest.approx(1 - row["channels_after"] / row["channels_before"])
    if rule != "uniform":  # the rule moved ratios away from uniform: there is something to check
        ratios = [rows[g.members[0]]["ratio"] for g in groups]
        assert max(ratios) - min(ratios) > 0.05


@pytest.mark.parametrize("rule", sorted(RATIO_RULES))
def test_default_width_per_layer_ratios_within_a_point_or_one_channel(rule):
    model = _model()
    layer_mrs, groups = _group_mrs(model, [0.9, 1.1, 0.4, 2.5, 1.6])
    out = _prune(model, rule, 0.5, layer_mrs, temperature=1.0, band=0.15)
    assert out.achieved_sparsity == pytest.approx(0.5, abs=0.01)
    assert not out.warnings
    for row in out.layers:
        one_channel = 1.0 / row["channels_before"]
        assert abs(row["ratio"] - row["ratio_planned"]) <= max(0.01, one_channel) + 1e-9
    first, last = out.layers[0], out.layers[-1]
    assert first["channels_after"] == first["channels_before"] and first["ratio"] == 0.0
    assert last["channels_after"] == last["channels_before"] and last["ratio"] == 0.0
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_mrs_rule_at_large_temperature_is_uniform_within_two_points():
    values = [0.2, 5.0, 1.0, 0.05, 3.0]  # 100x apart
    for width in (None, 5.0):  # default: channels of 24..96; wide: one channel < 1 point
        ratios, planned = {}, {}
        for rule, temperature in (("uniform", 1.0), ("mrs", 1e3)):
            model = _model(width=width)
            layer_mrs, _ = _group_mrs(model, values)
            out = _prune(model, rule, 0.6, layer_mrs, temperature=temperature)
            ratios[rule] = np.array([r["ratio"] for r in out.layers])
            planned[rule] = np.array([r["ratio_planned"] for r in out.layers])
        assert np.abs(planned["mrs"] - planned["uniform"]).max() <= 0.02
        if width:  # whole channels of the narrow default groups are 1-4 points each
            assert np.abs(ratios["mrs"] - ratios["uniform"]).max() <= 0.02
    # and at T = 1 the same sensitivities move ratios far from uniform
    model = _model()
    layer_mrs, _ = _group_mrs(model, values)
    moved = np.array([r["ratio"] for r in _prune(model, "mrs", 0.6, layer_mrs).layers])
    assert np.abs(moved - ratios["uniform"]).max() > 0.1


@pytest.mark.parametrize("rule", MRS_RULES)
def test_equal_mrs_gives_equal_ratios(rule):
    weights = np.array([64.0, 96, 48, 32, 24])

    def removed(r):  # parameter-weighted, groups of different sizes
        return float(np.sum(weights * r) / weights.sum())

    params = AllocationParams(temperature=0.1, band=0.3)

    def solve(mrs):
        return allocate_ratios(rule, mrs, removed, target=0.5, max_ratio=0.9, params=params)

    same = solve(np.full(5, 0.7))
    assert np.allclose(same, same[0]) and removed(same) == pytest.approx(0.5, abs=1e-6)
    pair = solve(np.array([0.3, 1.0, 1.0, 2.0, 0.5]))
    assert pair[1] == pytest.approx(pair[2], abs=1e-12)
    assert pair[0] > pair[3]  # less sensitive -> pruned more


def test_equal_mrs_end_to_end_matches_uniform():
    outs = {}
    for rule in ("uniform", *MRS_RULES):
        model = _model()
        layer_mrs, _ = _group_mrs(model, [1.3] * 5)
        out = _prune(model, rule, 0.5, layer_mrs, temperature=0.1)
        outs[rule] = [r["ratio"] for r in out.layers]
    assert all(outs[r] == outs["uniform"] for r in MRS_RULES)


def test_scale_aware_rule_depends_only_on_mrs_ratios():
    mrs = np.array([0.91, 1.14, 0.3, 2.0])
    for t in (0.2, 1.0, 5.0):
        w = scale_aware_weights(mrs, t)
        assert np.allclose(w, scale_aware_weights(1000 * mrs, t))
        # a_i / a_j = (MRS_i / MRS_j)^(-1/T)
        assert w[0] / w[1] == pytest.approx((mrs[0] / mrs[1]) ** (-1 / t))
    # the case: MRS 25% apart at T = 1 -> weights 25% apart, not 7x (z-score rule)
    two = scale_aware_weights(np.array([0.91, 1.14]), 1.0)
    assert two[0] / two[1] == pytest.approx(1.14 / 0.91)
    # T -> 0 concentrates on the least sensitive group
    w = scale_aware_weights(mrs, 0.01)
    assert w.argmax() == mrs.argmin() and w.max() == pytest.approx(len(mrs), rel=1e-3)


def test_scale_aware_rule_treats_non_positive_mrs_as_least_sensitive():
    w = scale_aware_weights(np.array([-0.2, 0.0, 1.0, 2.0]), 1.0)
    assert np.all(np.isfinite(w)) and w[0] == w[1] == w.max()
    assert np.allclose(scale_aware_weights(np.array([-1.0, -2.0]), 1.0), 1.0)


@pytest.mark.parametrize("scale", ["minmax", "rank"])
def test_band_rule_stays_within_lambda_of_its_centre(scale):
    sizes = np.array([64.0, 96, 48, 32, 24])

    def removed(r):
        return float(np.sum(sizes * r) / sizes.sum())

    mrs = np.array([0.9, 1.1, 0.4, 2.5, 1.6])
    for band in (0.0, 0.05, 0.2):
        params = AllocationParams(band=band, band_scale=scale)
        r = allocate_ratios("mrs_band", mrs, removed, target=0.5, max_ratio=0.9, params=params)
        assert removed(r) == pytest.approx(0.5, abs=1e-6)
        centre = r - band * band_offsets(mrs, scale)
        assert np.allclose(centre, centre[0])  # one centre, every ratio within +-lambda of it
        assert np.ptp(r) <= 2 * band + 1e-9
        if band:
            assert r.argmax() == mrs.argmin() and r.argmin() == mrs.argmax()
            assert np.ptp(r) == pytest.approx(2 * band)


def test_rank_band_ignores_how_far_apart_values_are():
    assert np.allclose(band_offsets(np.array([1.0, 1.01, 100.0]), "rank"), [1, 0, -1])
    assert np.allclose(band_offsets(np.array([1.0, 1.01, 100.0]), "minmax")[1], 1 - 2 * 0.01 / 99)
    assert np.allclose(band_offsets(np.array([2.0, 1.0, 1.0]), "rank"), [-1, 0.5, 0.5])  # tie


@pytest.mark.parametrize("rule", MRS_RULES)
def test_coupled_layers_share_one_mrs_and_one_ratio(rule):
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
        rule=rule,
        allocation=AllocationParams(temperature=0.5, band=0.2),
        max_ratio=0.9,
        layer_mrs=mrs,
        calib=None,
        seed=0,
    )
    assert out.achieved_sparsity == pytest.approx(0.5, abs=0.01)
    rows = {r["layer"]: r for r in out.layers}
    stage = [n for n in rows if n.startswith("layer2") and ("conv2" in n or "shortcut" in n)]
    coupled = [rows[n] for n in stage if rows[n]["ratio"] > 0]
    assert len(coupled) >= 2
    assert len({round(r["mrs"], 12) for r in coupled}) == 1
    assert len({round(r["ratio"], 12) for r in coupled}) == 1


def test_prune_damage_scores_each_group_once_and_restores_the_model():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand((48, 1, 8, 8), generator=g), torch.randint(0, 10, (48,), generator=g)
    setting = DamageSetting(criterion="taylor", ratio=0.5, example=x[:2], seed=0)
    scores = module_robust_sensitivity(
        model, layers, x, y, estimator="prune_damage", epsilon=0.1, damage=setting
    )
    _, groups = _group_mrs(model, [1.0] * 5)
    assert set(scores) == {m for grp in groups for m in grp.members}
    stem, classifier = next(iter(layers)), list(layers)[-1]
    assert stem not in scores and classifier not in scores
    assert len(set(scores.values())) > 1  # groups differ
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_prune_damage_needs_its_setting():
    model = _model()
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    with pytest.raises(ValueError, match="criterion and ratio"):
        module_robust_sensitivity(
            model,
            layers,
            torch.rand(4, 1, 8, 8),
            torch.zeros(4, dtype=torch.long),
            estimator="prune_damage",
            epsilon=0.1,
        )


def test_layers_table_has_a_column_per_estimator():
    from robprune.io.results_schema import LAYERS_SCHEMA
    from robprune.pruning import MRS_ESTIMATORS

    names = set(LAYERS_SCHEMA.names)
    assert {f"mrs_{e}" for e in MRS_ESTIMATORS} <= names and "ratio_planned" in names
