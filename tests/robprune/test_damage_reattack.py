"""`prune.mrs.reattack`: `prune_damage` scoring each pruned copy on examples made against it,
the option's validation, and its way through the trial config and the cache name."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from robprune.config import parse_trial_config
from robprune.errors import ConfigError
from robprune.io.cache_keys import mrs_inputs
from robprune.pruning import (
    DamageSetting,
    build_group_model,
    default_ignored_layers,
    module_robust_sensitivity,
    recalibrate_bn,
)
from robprune.training.losses import AdversarialSetting, pgd_examples
from tests.support.trials import seeded_model

DIGITS = (1, 8, 8)
THREAT = AdversarialSetting(epsilon=0.1, step_size=0.025, steps=5)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _calibration(n: int = 64) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand((n, *DIGITS), generator=g), torch.randint(0, 10, (n,), generator=g)


def _damage(model: nn.Module, x_adv: Tensor, y: Tensor, **setting) -> dict[str, float]:
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    damage = DamageSetting(criterion="l1", example=x_adv[:2], sparsity=0.5, **setting)
    return module_robust_sensitivity(
        model, layers, x_adv, y, estimator="prune_damage", epsilon=0.1, damage=damage
    )


def test_reattack_scores_each_pruned_copy_on_examples_made_against_it():
    model = seeded_model("digits_cnn")
    x, y = _calibration()
    events: list[tuple[str, nn.Module]] = []

    def attack(target: nn.Module) -> Tensor:  # the real PGD, from one seeded random start
        events.append(("attack", target))
        return pgd_examples(target, x, y, THREAT, torch.Generator().manual_seed(1)).detach()

    def recalibrate(copy: nn.Module) -> None:
        events.append(("recalibrate", copy))
        recalibrate_bn(copy, [x[:32]], num_batches=1)

    x_adv = attack(model)
    events.clear()
    fixed = _damage(model, x_adv, y, recalibrate=recalibrate)
    assert {kind for kind, _ in events} == {"recalibrate"}
    events.clear()
    again = _damage(model, x_adv, y, recalibrate=recalibrate, attack=attack)
    _, gm = build_group_model(model, x[:2], default_ignored_layers(model))
    # each group's pruned copy is recalibrated, then attacked; never the dense model
    assert [kind for kind, _ in events] == ["recalibrate", "attack"] * len(gm.groups)
    copies = [m for kind, m in events if kind == "attack"]
    assert [m for kind, m in events if kind == "recalibrate"] == copies
    assert len({id(m) for m in copies}) == len(gm.groups) and all(m is not model for m in copies)
    assert fixed.keys() == again.keys()
    rise = np.array([again[k] - fixed[k] for k in fixed])
    assert np.any(rise != 0) and rise.mean() > 0  # an attack on the copy finds a higher loss
    assert _damage(model, x_adv, y, recalibrate=recalibrate, attack=attack) == again  # seeded


def test_reattack_belongs_to_prune_damage():
    for estimator in ("first_order", "ascent"):
        with pytest.raises(ConfigError) as info:
            parse_trial_config({"prune": {"mrs": {"estimator": estimator, "reattack": True}}})
        assert info.value.path == "prune.mrs.reattack"
        message = str(info.value)
        assert "\n" not in message and "prune_damage" in message and estimator in message
    with pytest.raises(ConfigError) as info:
        parse_trial_config({"prune": {"mrs": {"estimator": "prune_damage", "reattack": "yes"}}})
    assert info.value.path == "prune.mrs.reattack"


def test_reattack_round_trips_through_the_trial_config_and_names_its_cache_entry():
    raw = {"prune": {"ratio": "mrs", "mrs": {"estimator": "prune_damage", "reattack": True}}}
    config = parse_trial_config(raw)
    assert config.prune.mrs.reattack is True
    written = json.loads(json.dumps(config.to_dict(), sort_keys=True))  # as config_json
    assert written["prune"]["mrs"]["reattack"] is True
    assert parse_trial_config(written) == config
    default = parse_trial_config({"prune": {"mrs": {"estimator": "prune_damage"}}})
    assert (
        default.prune.mrs.reattack is False
        and default.to_dict()["prune"]["mrs"]["reattack"] is False
    )
    fixed = parse_trial_config({"prune": {"ratio": "mrs", "mrs": {"estimator": "prune_damage"}}})
    assert mrs_inputs(config, "prune_damage").name() != mrs_inputs(fixed, "prune_damage").name()
