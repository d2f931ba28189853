"""Bad input is one line naming the key path, exit code 2, and nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from robprune.config import apply_overrides, parse_trial_config
from robprune.errors import ConfigError

BAD_CONFIGS = [
    ({"prune": {"sparsity": 1.5}}, "prune.sparsity"),
    ({"prune": {"sparsity": "half"}}, "prune.sparsity"),
    ({"prune": {"criterion": "magic"}}, "prune.criterion"),
    ({"prune": {"ratio": "random"}}, "prune.ratio"),
    ({"prune": {"mrs": {"temperature": 0}}}, "prune.mrs.temperature"),
    ({"prune": {"mrs": {"estimator": "exact"}}}, "prune.mrs.estimator"),
    ({"finetune": {"method": "sgd"}}, "finetune.method"),
    ({"finetune": {"epochs": -1}}, "finetune.epochs"),
    ({"finetune": {"epochs": 2.5}}, "finetune.epochs"),
    ({"finetune": {"lr": 0}}, "finetune.lr"),
    ({"finetune": {"schedule": "linear"}}, "finetune.schedule"),
    ({"finetune": {"trades": {"beta": -1}}}, "finetune.trades.beta"),
    ({"finetune": {"lr": {"loguniform": [0.001, 0.1]}}}, "finetune.lr"),
    ({"dense": {"method": "none"}}, "dense.method"),
    ({"data": {"dataset": "imagenet"}}, "data.dataset"),
    ({"data": {"val_fraction": 0.9}}, "data.val_fraction"),
    ({"data": {"synthetic": {"shape": [3, 32]}}}, "data.synthetic.shape"),
    ({"eval": {"attacks": ["deepfool"]}}, "eval.attacks[0]"),
    ({"eval": {"attacks": ["fgsm", "apgd_ce0"], "primary": "fgsm"}}, "eval.attacks[1]"),
    ({"eval": {"attacks": ["pgd0"]}}, "eval.attacks[0]"),
    ({"eval": {"attacks": ["apgd_t0"]}}, "eval.attacks[0]"),
    ({"eval": {"attacks": []}}, "eval.attacks"),
    ({"eval": {"epoch_attack": "apgd_ce0"}}, "eval.epoch_attack"),
    ({"prune": {"mrs": {"estimator": "first_order", "steps": 10}}}, "prune.mrs.steps"),
    ({"prune": {"mrs": {"steps": 10}}}, "prune.mrs.steps"),
    ({"prune": {"mrs": {"estimator": "ascent", "steps": 0}}}, "prune.mrs.steps"),
    ({"prune": {"mrs": {"reattack": True}}}, "prune.mrs.reattack"),
    (
        {"data": {"dataset": "synthetic", "synthetic": {"train_size": 5}}},
        "data.synthetic.train_size",
    ),
    ({"data": {"synthetic": {"train_size": 19, "num_classes": 10}}}, "data.synthetic.train_size"),
    ({"data": {"synthetic": {"test_size": 0}}}, "data.synthetic.test_size"),
    ({"data": {"synthetic": {"shape": [3, 0, 32]}}}, "data.synthetic.shape"),
    ({"data": {"synthetic": {"colour": "red"}}}, "data.synthetic.colour"),
    (
        {"data": {"dataset": "synthetic", "train_limit": 5, "synthetic": {"num_classes": 10}}},
        "data.train_limit",
    ),
    ({"data": {"train_limit": 0}}, "data.train_limit"),
    ({"model": {"arch": "resnet9000"}}, "model.arch"),
    ({"model": {"width": 0}}, "model.width"),
    ({"threat": {"epsilon": float("inf")}}, "threat.epsilon"),
    ({"finetune": {"warmup_epochs": 11}}, "finetune.warmup_epochs"),
    ({"eval": {"primary": "pgd50"}}, "eval.primary"),
    ({"threat": {"norm": "l1"}}, "threat.norm"),
    ({"device": "tpu"}, "device"),
    ({"seed": -3}, "seed"),
    ({"surprise": 1}, "surprise"),
    ({"prune": {"sparsity": 0.5, "typo": 1}}, "prune.typo"),
    ({"model": "resnet18"}, "model"),
]


@pytest.mark.parametrize(("config", "path"), BAD_CONFIGS, ids=[p for _, p in BAD_CONFIGS])
def test_bad_config_names_the_key_path(config, path):
    with pytest.raises(ConfigError) as info:
        parse_trial_config(config)
    message = str(info.value)
    assert message.startswith(f"{path}:"), message
    assert "\n" not in message


def test_defaults_resolve_fully():
    resolved = parse_trial_config({}).to_dict()
    assert resolved["prune"]["mrs"]["estimator"] == "first_order"
    assert resolved["eval"]["attacks"] == ["fgsm", "pgd20"]
    # a resolved config parses back to itself: it can be written beside results and rerun
    assert parse_trial_config(resolved).to_dict() == resolved


def test_spec_only_sections_are_ignored_by_a_trial():
    config = parse_trial_config({"search": {"mode": "grid"}, "storage": "x", "resources": {}})
    assert config.name == "trial"


def test_overrides_parse_yaml_values():
    data = apply_overrides(
        {"prune": {"sparsity": 0.5}},
        [
            "prune.sparsity=0.7",
            "finetune.trades.beta=3",
            "eval.attacks=[fgsm]",
            "eval.primary=fgsm",
        ],
    )
    config = parse_trial_config(data)
    assert config.prune.sparsity == 0.7
    assert config.finetune.trades.beta == 3.0
    assert config.eval.attacks == ("fgsm",)


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("spec", "overrides", "needle"),
    [
        ({"prune": {"sparsity": 2}}, [], "prune.sparsity"),
        ({"finetune": {"method": {"choice": ["ce", "pgd_at"]}}}, [], "finetune.method"),
        ({}, ["finetune.epochs=many"], "finetune.epochs"),
        ({}, ["noequals"], "--set"),
        (None, [], "not found"),
        ("a: [1, 2", [], "not valid YAML"),
        ({"data": {"dataset": "cifar10", "data_dir": "/nonexistent/cifar"}}, [], "/nonexistent"),
    ],
)
def test_run_cli_bad_input_exits_2_with_one_line(tmp_path, spec, overrides, needle):
    spec_path = tmp_path / "spec.yaml"
    if isinstance(spec, dict):
        spec_path.write_text(yaml.safe_dump(spec))
    elif isinstance(spec, str):
        spec_path.write_text(spec)
    out = tmp_path / "out"
    sets = [x for o in overrides for x in ("--set", o)]
    proc = _run_cli(
        "run",
        str(spec_path),
        "-o",
        str(out),
        "--set",
        f"cache_dir={tmp_path / 'cache'}",
        *sets,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert needle in lines[0]
    assert not out.exists()  # nothing written for bad input


def test_issue_13_options_fail_at_validation_with_one_line():
    """Each of these passed validation before and failed only after training had run."""
    cases = {
        "eval.attacks[0]": {"eval": {"attacks": ["apgd_ce0"], "primary": "apgd_ce0"}},
        "prune.mrs.steps": {"prune": {"ratio": "mrs", "mrs": {"steps": 3}}},
        "data.synthetic.train_size": {
            "data": {"dataset": "synthetic", "synthetic": {"train_size": 5, "num_classes": 10}}
        },
    }
    for path, config in cases.items():
        with pytest.raises(ConfigError) as info:
            parse_trial_config(config)
        assert info.value.path == path
        assert "\n" not in str(info.value)
    message = str(_error({"eval": {"attacks": ["apgd_ce0"], "primary": "apgd_ce0"}}))
    assert "apgd_ce0" in message and "positive number of steps" in message
    assert "ascent" in str(_error(cases["prune.mrs.steps"]))


def _error(config: dict) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_trial_config(config)
    return info.value


def test_mrs_steps_belong_to_ascent():
    first = parse_trial_config({"prune": {"mrs": {"estimator": "first_order"}}})
    assert first.prune.mrs.steps is None  # resolved config says first_order takes no steps
    ascent = parse_trial_config({"prune": {"mrs": {"estimator": "ascent"}}})
    assert ascent.prune.mrs.steps == 5
    assert parse_trial_config(ascent.to_dict()).prune.mrs.steps == 5
    assert (
        parse_trial_config({"prune": {"mrs": {"estimator": "ascent", "steps": 9}}}).prune.mrs.steps
        == 9
    )


def test_synthetic_smallest_valid_sizes_and_test_size_one():
    config = parse_trial_config(
        {
            "data": {
                "dataset": "synthetic",
                "synthetic": {"num_classes": 4, "train_size": 8, "test_size": 1},
            }
        }
    )
    assert config.data.synthetic.test_size == 1
    assert config.to_dict()["data"]["synthetic"]["shape"] == [3, 32, 32]


def test_programmatic_configs_are_validated_too():
    from dataclasses import replace

    config = parse_trial_config({})
    bad = config.replace(prune=replace(config.prune, sparsity=1.5))
    with pytest.raises(ConfigError, match=r"^prune\.sparsity: must be in \[0, 0\.99\]"):
        parse_trial_config(bad)


def test_mrs_estimators_and_attack_names_match_the_registries():
    """Every name form the validator allows builds the attack it names (other name lists:
    tests/robprune/test_factors.py)."""
    from robprune import config
    from robprune.attacks import build_attack
    from robprune.config.names import ATTACKS, parse_attack_name
    from robprune.pruning import MRS_ESTIMATORS

    assert config.MRS_ESTIMATORS == tuple(MRS_ESTIMATORS)
    for form in ATTACKS:
        name = form.replace("{K}", "7")
        parsed = parse_attack_name(name)
        attack = build_attack(name, epsilon=0.1, norm="linf")
        assert (attack.name, attack.kind, attack.steps, attack.loss) == (
            name,
            parsed.kind,
            parsed.steps,
            parsed.loss,
        ), name
        assert attack.norm == ("l2" if parsed.l2 else "linf"), name


def test_config_module_stays_torch_free():
    code = (
        "import sys, robprune.config, robprune.config.spec_yaml, robprune.io.atomic; "
        "bad = [m for m in ('torch', 'ray', 'optuna') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
