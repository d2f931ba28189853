"""Pruning internals: BatchNorm recalibration, the global rule, the MAC budget, exact
budgets on concatenated inputs, the prune_damage probe ratio, the MRS noise floor, the L2 radius
of `pgdK_l2`, and the model's mode while adversarial training generates its examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from robprune.attacks import build_attack
from robprune.models import list_models
from robprune.pruning import (
    AllocationParams,
    DamageSetting,
    build_group_model,
    default_ignored_layers,
    module_robust_sensitivity,
    prune_model,
    recalibrate_bn,
    scale_aware_weights,
    uniform_probe_ratio,
)
from robprune.pruning.allocation import global_family
from robprune.pruning.apply import prune_roots
from robprune.pruning.criteria import get_criterion
from robprune.pruning.groups import prunable_macs_of
from robprune.training.losses import AdversarialSetting, objective
from tests.support.trials import seeded_model

# Reduced widths keep these fast; the graph (and so the budget arithmetic) is unchanged.
WIDTH = {"resnet18": 0.25, "resnet34": 0.25, "resnet50": 0.25, "vgg11_bn": 0.25,
         "vgg16_bn": 0.25, "mobilenetv2": 0.5, "wrn28": 1, "wrn28_4": 0.25,
         "wrn28_10": 0.1}  # fmt: skip
DIGITS = (1, 8, 8)
CIFAR = (3, 32, 32)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _model(arch: str = "digits_cnn", shape=DIGITS, width: float | None = None) -> nn.Module:
    return seeded_model(arch, width=width, shape=shape)


def _shape(arch: str) -> tuple[int, int, int]:
    return DIGITS if arch in ("digits_cnn", "small_cnn") else CIFAR


# --- fix 4: each slice of a concatenated input belongs to its producer's group -------------


def _prune_randomly(arch: str):
    """(model, group model, kept channels, dense params) after a random ratio per group."""
    shape = _shape(arch)
    model = _model(arch, shape, WIDTH.get(arch))
    example = torch.rand(2, *shape)
    _, gm = build_group_model(model, example, default_ignored_layers(model))
    rng = np.random.default_rng(len(arch))
    kept = gm.kept_channels(rng.uniform(0.0, 0.8, len(gm.groups)))
    dense = sum(p.numel() for p in model.parameters())
    prune_roots(
        model,
        {g.root_name: float(r) for g, r in zip(gm.groups, gm.ratios_for(kept), strict=True)},
        example=example,
        criterion=get_criterion("l1"),
        calib=None,
        seed=0,
    )
    return model, example, gm, kept, dense


@pytest.mark.parametrize("arch", list_models())
def test_random_group_ratios_predicted_equals_achieved_params(arch):
    """Closed-form parameter count == what Torch-Pruning leaves, for every architecture, with a
    random ratio per group (MobileViT's fusion conv reads cat(x, tokens))."""
    model, _, gm, kept, dense = _prune_randomly(arch)
    achieved = (dense - sum(p.numel() for p in model.parameters())) / gm.prunable_params
    assert achieved == pytest.approx(gm.removed_fraction_kept(kept), abs=1e-6), arch


@pytest.mark.parametrize("arch", ["digits_cnn", "mobilenetv2", "mobilevit_xxs", "resnet18"])
def test_random_group_ratios_predicted_equals_achieved_macs(arch):
    """The same for MACs, counted by PyTorch's FlopCounterMode."""
    model, example, gm, kept, _ = _prune_randomly(arch)
    left = prunable_macs_of(model, example, gm.mac_modules)
    assert 1 - left / gm.prunable_macs == pytest.approx(
        gm.removed_fraction_kept(kept, "macs"), abs=1e-6
    )


# --- capability: budget in MACs -------------------------------------------------------------


@pytest.mark.parametrize("arch", ["digits_cnn", "resnet18"])
def test_mac_budget_uniform_and_mrs_land_on_the_same_macs(arch):
    shape = _shape(arch)
    outcomes = {}
    for rule in ("uniform", "mrs", "global"):
        model = _model(arch, shape, 0.5 if arch == "resnet18" else None)
        example = torch.rand(2, *shape)
        _, gm = build_group_model(model, example, default_ignored_layers(model))
        values = np.linspace(0.2, 2.0, len(gm.groups))
        mrs = {m: float(v) for g, v in zip(gm.groups, values, strict=True) for m in g.members}
        outcomes[rule] = prune_model(
            model,
            example=example,
            criterion="l1",
            sparsity=0.5,
            rule=rule,
            allocation=AllocationParams(temperature=1.0),
            max_ratio=0.9,
            layer_mrs=mrs,
            calib=None,
            seed=0,
            budget="macs",
        )
    for out in outcomes.values():
        assert out.budget == "macs" and out.achieved_macs_sparsity == pytest.approx(0.5, abs=0.01)
    a, b = outcomes["uniform"], outcomes["mrs"]
    assert abs(a.achieved_macs_sparsity - b.achieved_macs_sparsity) <= 0.01
    # the same MACs is not the same parameters: the rules spend them differently
    assert a.achieved_sparsity != pytest.approx(b.achieved_sparsity, abs=1e-3)
    # both fractions are measured: parameters directly, MACs with PyTorch's counter
    assert a.flops < a.flops_dense and a.prunable_macs > 0


# --- capability: the global rule ------------------------------------------------------------


def test_global_family_thresholds_normalised_scores_and_caps():
    family = global_family([np.array([1.0, 2, 3, 4]), np.array([0.5, 5, 6, 7])], 0.5)
    assert family.ratios(2.5).tolist() == [0.5, 0.25]
    assert family.ratios(100.0).tolist() == [0.5, 0.5]  # capped by max_layer_ratio
    assert family.ratios(family.lo).tolist() == [0.0, 0.0]


def test_global_rule_meets_the_budget_and_ranks_across_groups():
    outs = {}
    for criterion in ("l2", "lamp"):
        model = _model()
        outs[criterion] = prune_model(
            model,
            example=torch.rand(2, *DIGITS),
            criterion=criterion,
            sparsity=0.5,
            rule="global",
            max_ratio=0.7,
            layer_mrs=None,
            calib=None,
            seed=0,
        )
    for out in outs.values():
        assert out.achieved_sparsity == pytest.approx(0.5, abs=0.01)
        ratios = [r["ratio"] for r in out.layers if r["ratio"] > 0]
        assert max(ratios) <= 0.7 + 1e-9 and max(ratios) - min(ratios) > 0.05  # not uniform
    # LAMP's normalisation matters only across groups: under global it is no longer l2
    ratio = {c: [r["ratio"] for r in o.layers] for c, o in outs.items()}
    assert ratio["l2"] != ratio["lamp"]


def test_lamp_is_refused_under_a_per_layer_rule():
    with pytest.raises(ValueError, match="prune.ratio: global"):
        prune_model(
            _model(),
            example=torch.rand(2, *DIGITS),
            criterion="lamp",
            sparsity=0.5,
            rule="uniform",
            max_ratio=0.9,
            layer_mrs=None,
            calib=None,
            seed=0,
        )


# --- fix 1: BatchNorm recalibration ---------------------------------------------------------


def test_recalibration_re_estimates_bn_statistics_without_touching_weights():
    model = _model()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        bn.running_mean.fill_(7.0)  # stale: not what the layer sees
        bn.running_var.fill_(9.0)
    state = model.state_dict().items()
    weights = {k: v.clone() for k, v in state if "running" not in k and "batches" not in k}
    g = torch.Generator().manual_seed(0)
    batches = [torch.rand(16, *DIGITS, generator=g) for _ in range(4)]
    seen = []
    hook = bn.register_forward_hook(lambda m, i, o: seen.append(i[0].mean(dim=(0, 2, 3))))
    used = recalibrate_bn(model, batches, num_batches=3)
    hook.remove()
    assert used == 3 and len(seen) == 3
    assert torch.allclose(bn.running_mean, torch.stack(seen).mean(0), atol=1e-5)
    assert bn.momentum == 0.1 and not model.training and not bn.training
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items() if k in weights)
    assert recalibrate_bn(model, batches, num_batches=0) == 0


# --- fix 2: prune_damage probes at the uniform rule's channel ratio -------------------------


def test_prune_damage_probes_at_the_uniform_channel_ratio():
    model = _model()
    example = torch.rand(2, *DIGITS)
    _, gm = build_group_model(model, example, default_ignored_layers(model))
    ratio = uniform_probe_ratio(gm, sparsity=0.5, max_ratio=0.9)
    # a conv chain loses about 1 - (1 - r)^2 of its parameters at channel ratio r
    assert 0.25 < ratio < 0.4 and abs(ratio - (1 - np.sqrt(0.5))) < 0.06
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand((32, *DIGITS), generator=g), torch.randint(0, 10, (32,), generator=g)

    def damage(**kw):
        setting = DamageSetting(criterion="l1", example=example, **kw)
        return module_robust_sensitivity(
            model, layers, x, y, estimator="prune_damage", epsilon=0.1, damage=setting
        )

    by_budget = damage(sparsity=0.5, max_ratio=0.9)
    assert by_budget == damage(ratio=ratio)
    assert by_budget != damage(ratio=0.5)  # the old probe: sparsity taken as a channel ratio


def test_prune_damage_recalibrates_each_pruned_copy():
    model = _model()
    example = torch.rand(2, *DIGITS)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    x, y = torch.rand(32, *DIGITS), torch.randint(0, 10, (32,))
    calls = []

    def recalibrate(copy: nn.Module) -> None:
        calls.append(recalibrate_bn(copy, [torch.rand(16, *DIGITS)], num_batches=1))

    setting = DamageSetting(criterion="l1", example=example, sparsity=0.5, recalibrate=recalibrate)
    scores = module_robust_sensitivity(
        model, layers, x, y, estimator="prune_damage", epsilon=0.1, damage=setting
    )
    _, gm = build_group_model(model, example, default_ignored_layers(model))
    assert calls == [1] * len(gm.groups) and len(scores) >= len(gm.groups)


# --- fix 8: the MRS noise floor -------------------------------------------------------------


def test_noise_level_mrs_counts_as_the_least_measured_group_not_less():
    w = scale_aware_weights(np.array([1.0, 0.5, 0.3, 1e-6, -1e-4]), 1.0)
    assert w[3] == pytest.approx(w[2]) and w[4] == pytest.approx(w[2])
    assert w[2] > w[1] > w[0]


# --- fix 5: an L2 attack under an L-inf threat gets an L2 radius ----------------------------


def test_l2_attack_takes_its_own_radius_and_names_it():
    attack = build_attack("pgd20_l2", epsilon=8 / 255, norm="linf", l2_epsilon=0.5)
    config = attack.config()
    assert config["norm"] == "l2" and config["epsilon"] == 0.5 and config["step_size"] == 0.125
    linf = build_attack("pgd20", epsilon=8 / 255, norm="linf", l2_epsilon=0.5)
    assert linf.epsilon == pytest.approx(8 / 255)


# --- fix 6: the model's mode while adversarial training generates its examples ---------------


@pytest.mark.parametrize(("attack_bn", "method", "forwards"), [
    ("train", "pgd_at", 3 + 1), ("eval", "pgd_at", 1),
    ("train", "fgsm_rs", 1 + 1), ("eval", "fgsm_rs", 1),
])  # fmt: skip
def test_attack_bn_sets_the_mode_of_example_generation(attack_bn, method, forwards):
    model = _model().train()
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    adv = AdversarialSetting(epsilon=0.1, step_size=0.025, steps=3, attack_bn=attack_bn)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(8, *DIGITS, generator=g), torch.randint(0, 10, (8,), generator=g)
    objective(method)(model, x, y, adv, g)
    assert int(bn.num_batches_tracked) == forwards  # train-mode forwards update BN
    assert model.training
