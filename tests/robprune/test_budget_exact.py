"""Budgets that hold exactly: the layer cap under every rule and architecture, the warning when
whole channels make a budget unreachable under the cap, and MACs against PyTorch's counter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robprune.models import list_models
from robprune.pruning import AllocationParams, build_group_model, default_ignored_layers
from robprune.pruning.allocation import RATIO_RULES, allocate_ratios
from robprune.pruning.apply import prune_model
from tests.support.trials import seeded_model

WIDTH = {"resnet18": 0.25, "resnet34": 0.25, "resnet50": 0.25, "vgg11_bn": 0.25,
         "vgg16_bn": 0.25, "mobilenetv2": 0.5, "wrn28_4": 0.25, "wrn28_10": 0.1}  # fmt: skip


def _shape(arch: str) -> tuple[int, int, int]:
    return (1, 8, 8) if arch in ("digits_cnn", "small_cnn") else (3, 32, 32)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("arch", list_models())
def test_the_cap_holds_exactly_for_every_rule(arch):
    model = seeded_model(arch, width=WIDTH.get(arch), shape=_shape(arch))
    example = torch.rand(2, *_shape(arch))
    _, gm = build_group_model(model, example, default_ignored_layers(model))
    rng = np.random.default_rng(0)
    mrs = rng.uniform(0.1, 2.0, len(gm.groups))
    scores = [rng.random(g.channels) for g in gm.groups]
    n = np.array([g.channels for g in gm.groups])
    for cap in (0.8, 0.55):
        whole, _ = gm.reach(cap)
        for rule in sorted(RATIO_RULES):
            planned = allocate_ratios(
                rule, mrs, gm.fraction("params", cap), target=min(0.9, whole), max_ratio=cap,
                params=AllocationParams(temperature=0.3, band=0.3), channel_scores=scores,
            )  # fmt: skip
            ratios = gm.refine(planned, target=min(0.9, whole), max_ratio=cap)
            kept = gm.kept_channels(ratios)  # what Torch-Pruning keeps for these ratios
            assert (1 - kept / n <= cap + 1e-12).all(), (arch, rule, cap)


def test_whole_channels_under_the_cap_stop_short_with_one_warning():
    """A target between what whole channels and what continuous ratios can remove under cap
    0.8: every group at the cap (64 channels keep 13, not int(12.8) = 12) and one line."""
    example = torch.rand(2, 1, 8, 8)
    model = seeded_model("digits_cnn", shape=(1, 8, 8))
    _, gm = build_group_model(model, example, default_ignored_layers(model))
    whole, continuous = gm.reach(0.8)
    assert whole < continuous
    out = prune_model(
        model, example=example, criterion="l2", sparsity=(whole + continuous) / 2,
        rule="global", max_ratio=0.8, layer_mrs=None, calib=None, seed=0,
    )  # fmt: skip
    assert max(row["ratio"] for row in out.layers) <= 0.8
    assert any(row["channels_before"] == 64 and row["channels_after"] == 13 for row in out.layers)
    assert out.achieved_sparsity == pytest.approx(whole, abs=1e-9)
    cap = [w for w in out.warnings if "unreachable in whole channels" in w]
    assert len(cap) == 1 and "\n" not in cap[0]


def _attention_macs(model, example) -> int:
    """By hand: q @ k^T and attn @ v, each b * heads * n * n * head_dim, per Attention."""
    from robprune.models.mobilevit import Attention

    total, hooks = [0], []

    def hook(module, args, _out):
        b, n, _ = args[0].shape
        head_dim = module.qkv.out_features // (3 * module.num_heads)
        total[0] += 2 * b * module.num_heads * n * n * head_dim

    for m in model.modules():
        if isinstance(m, Attention):
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(example[:1])
    for h in hooks:
        h.remove()
    return total[0]


@pytest.mark.parametrize("arch", list_models())
def test_macs_are_pytorchs_count_and_the_budget_covers_the_group_layers(arch):
    from torch.utils.flop_counter import FlopCounterMode

    from robprune.pruning import count_macs_params
    from robprune.pruning.groups import module_macs

    model = seeded_model(arch, width=WIDTH.get(arch), shape=_shape(arch))
    example = torch.rand(2, *_shape(arch))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(example[:1])
    macs, params = count_macs_params(model, example)
    assert macs == counter.get_total_flops() // 2
    assert params == sum(p.numel() for p in model.parameters())
    layers = sum(module_macs(model, example).values())  # every Conv/Linear
    assert macs - layers == _attention_macs(model, example)  # the rest is attention, if any
    _, gm = build_group_model(model, example, default_ignored_layers(model))
    assert 0 < gm.prunable_macs <= layers


def test_group_lamp_and_layer_lamp_are_different_readings_under_global():
    """`lamp` (Torch-Pruning's group LAMP) and `lamp_layer` (LAMP on the root layer's own
    filter norms) score channels differently, so they keep different channels."""
    kept = {}
    for criterion in ("lamp", "lamp_layer"):
        model = seeded_model("digits_cnn", shape=(1, 8, 8))
        out = prune_model(
            model, example=torch.rand(2, 1, 8, 8), criterion=criterion, sparsity=0.5,
            rule="global", max_ratio=0.9, layer_mrs=None, calib=None, seed=0,
        )  # fmt: skip
        assert out.achieved_sparsity == pytest.approx(0.5, abs=0.01)
        kept[criterion] = {n: p.detach().clone() for n, p in model.named_parameters()}
    shapes = {n: p.shape for n, p in kept["lamp"].items()}
    differ = [
        n
        for n, p in kept["lamp_layer"].items()
        if p.shape != shapes[n] or not p.equal(kept["lamp"][n])
    ]
    assert differ
