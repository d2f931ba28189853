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
        [sys.executable, "-m", "robprune.cli", *args],
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
