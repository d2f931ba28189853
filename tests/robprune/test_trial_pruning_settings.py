"""Pruning settings wired into a trial: cache names derived from their inputs, BatchNorm
recalibration, the global rule and the MAC budget in `run_trial`, `attack_bn`,
`eval.l2_epsilon`, AutoAttack's subset label, the primary-vs-stronger-attack gap flag,
`data.val_source`, security curves."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from robprune.config import ResolvedThreat, parse_trial_config
from robprune.config.factors import factor_values
from robprune.data import load_data
from robprune.evaluation.curves import CURVE_FACTORS, security_curve
from robprune.evaluation.final import FinalSuite, final_evaluation
from robprune.evaluation.masking import GAP_THRESHOLD
from robprune.io.cache_keys import dense_eval_inputs, mrs_inputs
from robprune.io.results_schema import LAYERS_SCHEMA, TRIALS_SCHEMA
from robprune.models import create_model
from robprune.trial import run_trial
from robprune.trial.dense import dense_key
from tests.support.trials import fast_trial


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def trained(cache):
    """The fast trial's dense model (PGD-trained small_cnn), from the shared cache."""
    from robprune.trial.builders import build_model, load_trial_data
    from robprune.trial.dense import ensure_dense_for

    config = parse_trial_config(fast_trial(cache))
    dense = ensure_dense_for(config, log=lambda message: None)
    model = build_model(config.model, load_trial_data(config.data, seed=0))
    model.load_state_dict(dense.state_dict())
    return model.eval()


def _tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return create_model(
        "small_cnn", num_classes=10, input_shape=(1, 8, 8), mean=(0.5,), std=(0.25,), width=0.5
    ).eval()


# --- fix 3: every cached value's name changes with every input ------------------------------

#: One change per input of the MRS records (each field of MRSInputs is moved by one of them).
MRS_CHANGES = {
    "seed": {"seed": 1},
    "num_examples": {"prune": {"mrs": {"num_examples": 64}}},
    "threat.epsilon": {"threat": {"epsilon": 0.05}},
    "threat.step_size": {"threat": {"step_size": 0.01}},
    "threat.train_steps": {"threat": {"train_steps": 4}},
    "threat.norm": {"threat": {"norm": "l2", "epsilon": 0.5}},
    "threat.eval_steps": {"threat": {"eval_steps": 7}},
    "split.val_source": {"data": {"val_source": "test"}},
    "split.val_fraction": {"data": {"val_fraction": 0.2}},
    "split.train_limit": {"data": {"train_limit": 500}},
    "split.test_limit": {"eval": {"test_limit": 100}},
    "weight_epsilon": {"prune": {"mrs": {"epsilon": 0.2}}},
}
DAMAGE_CHANGES = {
    "criterion": {"prune": {"criterion": "l2"}},
    "sparsity": {"prune": {"sparsity": 0.6}},
    "budget": {"prune": {"budget": "macs"}},
    "max_layer_ratio": {"prune": {"max_layer_ratio": 0.8}},
    "bn_recalibration": {"prune": {"bn_recalibration": 3}},
    "bn_batch_size": {"finetune": {"batch_size": 32}},
    "reattack": {"prune": {"mrs": {"estimator": "prune_damage", "reattack": True}}},
}


def _config(cache, change: dict):
    base = fast_trial(cache)
    for section, value in change.items():
        if isinstance(value, dict):
            merged = dict(base[section])
            for k, v in value.items():
                merged[k] = {**merged[k], **v} if isinstance(v, dict) else v
            base[section] = merged
        else:
            base[section] = value
    return parse_trial_config(base)


@pytest.mark.parametrize("estimator", ["first_order", "ascent", "prune_damage"])
def test_every_mrs_input_changes_the_cache_name(cache, estimator):
    base = mrs_inputs(_config(cache, {}), estimator)
    changes = dict(MRS_CHANGES)
    if estimator == "prune_damage":
        changes.pop("weight_epsilon")
        changes.update(DAMAGE_CHANGES)
    if estimator == "ascent":
        changes["steps"] = {"prune": {"mrs": {"estimator": "ascent", "steps": 3}}}
    moved = set()
    for what, change in changes.items():
        other = mrs_inputs(_config(cache, change), estimator)
        assert other.name() != base.name(), what
        fields = dataclasses.fields(base)
        moved |= {f.name for f in fields if getattr(other, f.name) != getattr(base, f.name)}
    set_fields = {f.name for f in dataclasses.fields(base) if getattr(base, f.name) is not None}
    assert set_fields - {"estimator"} <= moved  # every input this estimator reads was moved
    assert mrs_inputs(_config(cache, {}), estimator).name() == base.name()  # and is stable


def test_every_dense_evaluation_input_changes_the_cache_name(cache):
    base = dense_eval_inputs(_config(cache, {}), 200)
    changes = {
        **{k: v for k, v in MRS_CHANGES.items() if k.startswith(("threat", "split"))},
        "primary": {"eval": {"attacks": ["fgsm", "pgd5", "pgd7"], "primary": "pgd7"}},
        "l2_epsilon": {"eval": {"l2_epsilon": 0.25}},
    }
    for what, change in changes.items():
        assert dense_eval_inputs(_config(cache, change), 200).name() != base.name(), what
    assert dense_eval_inputs(_config(cache, {}), 100).name() != base.name()  # test size


# --- fix 6: attack_bn -----------------------------------------------------------------------


def test_attack_bn_resolves_each_methods_reference_and_keys_the_dense_model(cache):
    config = _config(cache, {})
    assert config.finetune.attack_bn == "train" and config.dense.attack_bn == "train"
    assert _config(cache, {"finetune": {"method": "trades"}}).finetune.attack_bn == "eval"
    assert _config(cache, {"finetune": {"method": "ce"}}).finetune.attack_bn is None
    assert _config(cache, {"dense": {"attack_bn": "eval"}}).dense.attack_bn == "eval"
    assert dense_key(_config(cache, {"dense": {"attack_bn": "eval"}})) != dense_key(config)


# --- fix 1 and the capabilities, in a trial ---------------------------------------------------


def test_bn_recalibration_global_and_macs_in_a_trial(cache):
    def run(**prune):
        cfg = fast_trial(
            cache,
            prune={"sparsity": 0.5, "criterion": "l1", "ratio": "uniform", **prune},
            finetune={"method": "none"},
        )
        return run_trial(cfg)

    stale, fresh = run(bn_recalibration=0), run(bn_recalibration=10)
    assert fresh.config["prune"]["bn_recalibration"] == 10
    assert {row["bn_recalibration"] for row in fresh.layers} == {10}
    # the same pruned weights, evaluated with re-estimated BatchNorm statistics
    assert stale.metrics["clean_acc"] != fresh.metrics["clean_acc"]
    lamp = run(criterion="lamp", ratio="global", budget="macs")
    assert lamp.config["prune"]["criterion"] == "lamp"
    assert lamp.metrics["achieved_macs_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert lamp.metrics["achieved_sparsity"] != pytest.approx(0.5, abs=0.01)
    values = factor_values(lamp.config)
    assert values["ratio_rule"] == "global" and values["budget"] == "macs"
    assert values["bn_recalibration"] == 10
    assert {"achieved_macs_sparsity", "budget"} <= set(TRIALS_SCHEMA.names)
    assert "bn_recalibration" in LAYERS_SCHEMA.names
    # under a per-layer rule lamp is l2, and the resolved config says so
    assert parse_trial_config(fast_trial(cache, prune={"criterion": "lamp"})).prune.criterion == (
        "l2"
    )


def test_reattack_reaches_the_trial_result_and_changes_prune_damage(cache):
    def run(reattack: bool):
        mrs = {"num_examples": 64, "estimator": "prune_damage", "reattack": reattack}
        prune = {"ratio": "mrs", "mrs": mrs}
        return run_trial(fast_trial(cache, prune=prune, finetune={"method": "none"}))

    fixed, again = run(False), run(True)
    assert again.config["prune"]["mrs"]["reattack"] is True
    assert fixed.config["prune"]["mrs"]["reattack"] is False
    by_layer = [{r["layer"]: r["mrs_prune_damage"] for r in t.layers} for t in (fixed, again)]
    assert by_layer[0].keys() == by_layer[1].keys() and by_layer[0] != by_layer[1]


# --- fix 10: validation carved from the test split -------------------------------------------


def _rows(split) -> list[tuple]:
    return sorted(
        (bytes(x.numpy().tobytes()), int(y)) for x, y in zip(split.x, split.y, strict=True)
    )


def test_test_carved_validation_is_fixed_and_disjoint_from_the_reported_test():
    plain = load_data("digits")
    a = load_data("digits", val_source="test", seed=0)
    b = load_data("digits", val_source="test", seed=5)
    assert _rows(a.val) == _rows(b.val) and _rows(a.test) == _rows(b.test)  # any seed
    assert sorted(_rows(a.val) + _rows(a.test)) == _rows(plain.test)  # a partition of test
    assert len(a.train) == len(plain.train) + len(plain.val)  # all training examples


def test_brought_checkpoint_with_train_carved_validation_warns(cache, tmp_path):
    ckpt = tmp_path / "brought.pt"
    torch.save(_tiny_model().state_dict(), ckpt)
    common = {"checkpoint": str(ckpt), "normalize": "dataset"}

    def run(val_source):
        return run_trial(
            fast_trial(
                cache,
                dense=common,
                data={"dataset": "digits", "val_source": val_source},
                finetune={"method": "none"},
            )
        )

    train, test = run("train"), run("test")
    assert any("data.val_source: test" in w for w in train.warnings)
    assert not any("val_source" in w for w in test.warnings)
    assert train.metrics["val_source"] == "train" and test.metrics["val_source"] == "test"


# --- fixes 5, 7, 9 and the security curve: the final evaluation -----------------------------


def _final(model, split, attacks, primary, *, epsilon, step_size=None, l2_epsilon=None, **kw):
    threat = ResolvedThreat(
        norm="linf", epsilon=epsilon, step_size=step_size, eval_steps=3, l2_epsilon=l2_epsilon
    )
    suite = FinalSuite(attacks=tuple(attacks), primary=primary, threat=threat, batch_size=64, **kw)
    return final_evaluation(model, split, suite, device=torch.device("cpu"))


def _split(n: int = 60):
    data = load_data("digits")
    return type(data.test)(x=data.test.x[:n], y=data.test.y[:n])


def test_l2_attack_uses_eval_l2_epsilon_and_names_it():
    assert parse_trial_config({}).eval.l2_epsilon == 0.5
    out = _final(_tiny_model(), _split(), ["pgd3", "pgd3_l2"], "pgd3", epsilon=0.1, l2_epsilon=0.5)
    assert parse_trial_config({"eval": {"l2_epsilon": 0.25}}).resolved_threat.l2_epsilon == 0.25
    assert out.attack_config["pgd3_l2"]["epsilon"] == 0.5
    assert out.attack_config["pgd3_l2"]["norm"] == "l2"
    assert out.attack_config["pgd3"]["epsilon"] == 0.1


def test_gap_between_primary_attack_and_our_apgd_is_flagged_with_its_meaning(trained):
    # a one-step PGD with a tiny step barely attacks: the gap to APGD is large
    out = _final(trained, _split(), ["pgd1", "apgd_ce10"], "pgd1", epsilon=0.3, step_size=1e-4)
    gap = out.metrics["attack_gap"]
    assert gap["gap"] > GAP_THRESHOLD and gap["reference"].startswith("our APGD")
    codes = [f["code"] for f in out.metrics["masking_flags"]]
    assert "primary_attack_gap" in codes
    assert any("overstates robustness" in w for w in out.warnings)


def test_autoattack_on_a_subset_is_labelled_with_its_size_and_clean_accuracy(trained):
    split = _split(60)
    model = trained
    out = _final(
        model, split, ["pgd3"], "pgd3", epsilon=0.05, autoattack="standard", autoattack_n=12
    )
    m = out.metrics
    assert m["autoattack_n"] == 12 and m["autoattack_scope"] == "on the first 12 test images"
    with torch.no_grad():
        x = split.x[:12].float() / 255 if split.x.dtype == torch.uint8 else split.x[:12]
        clean = (model(x).argmax(1) == split.y[:12]).float().mean().item()
    assert m["autoattack_clean_acc"] == pytest.approx(clean)
    assert out.attack_config["autoattack"]["examples"] == 12
    assert m["attack_gap"]["scope"] == "on the first 12 test images"


def test_security_curve_runs_from_clean_to_unbounded_and_the_report_draws_it(trained):
    from analysis.render.curves import security_curves

    split = _split(40)
    x = split.x.float() / 255 if split.x.dtype == torch.uint8 else split.x
    kw = dict(epsilon=0.1, norm="linf", steps=3, batch_size=64, device=torch.device("cpu"), seed=0)
    rows = security_curve(trained, x, split.y, **kw)
    assert [r["factor"] for r in rows] == [*CURVE_FACTORS, None] and rows[-1]["unbounded"]
    accs = [r["accuracy"] for r in rows]
    assert accs[0] >= accs[3] >= accs[-1] and accs[-1] <= 0.01
    dense = security_curve(_tiny_model(1), x, split.y, **kw)
    trials = pd.DataFrame(
        {
            "trial_id": ["a", "b"],
            "finalist": [True, True],
            "finalist_rank": [1, 2],
            "eps_sweep_json": [json.dumps(rows), json.dumps(rows)],
            "dense_eps_sweep_json": [json.dumps(dense), json.dumps(dense)],
        }
    )
    fig = security_curves(trials)
    assert fig.name == "security_curves" and fig.png.startswith(b"\x89PNG")
    assert list(fig.data["model"].unique()) == ["finalist 1", "dense 1", "finalist 2"]
    assert np.allclose(sorted(fig.data["factor"].unique()), CURVE_FACTORS)
