"""Numbers as YAML 1.2 reads them, in specs, trial configs and `--set` overrides."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from robprune.config import apply_overrides, load_yaml, parse_trial_config
from robprune.config.spec_yaml import dump_yaml, load_yaml_text, parse_value
from robprune.errors import BadInput

# Every notation of the YAML 1.2 core schema (spec 1.2.2, 10.3.2), and the YAML 1.1 forms
# that 1.2 reads differently.
NUMBERS = [
    # integers: decimal with optional sign, 0o octal, 0x hexadecimal
    ("0", 0),
    ("12", 12),
    ("+12", 12),
    ("-12", -12),
    ("-0", 0),
    ("010", 10),  # YAML 1.1: octal 8
    ("0o17", 15),  # YAML 1.1: a string
    ("0o0", 0),
    ("0x1F", 31),
    ("0xff", 255),
    ("0x0", 0),
    # floats: fraction, exponent, both, leading dot, trailing dot, signs
    ("1e-3", 0.001),  # YAML 1.1: the string "1e-3"
    ("5e-4", 0.0005),
    ("1E3", 1000.0),
    ("1e+3", 1000.0),
    ("+1.0e+2", 100.0),
    ("-2.5E-1", -0.25),
    (".5", 0.5),
    ("-.5e3", -500.0),
    ("1.", 1.0),
    ("0.1", 0.1),
    ("3.14159", 3.14159),
    (".inf", math.inf),
    ("+.inf", math.inf),
    (".Inf", math.inf),
    ("-.INF", -math.inf),
    ("-.inf", -math.inf),
]
NOT_NUMBERS = [
    "1_000",  # YAML 1.1 int; 1.2 core: string
    "1_000.5",
    "0b101",  # 1.1 binary
    "1:30",  # 1.1 sexagesimal
    "-0x1F",  # hex takes no sign in 1.2
    "+0o7",
    "0o8",
    "0xG",
    "inf",
    "nan",
    "NaN",
    "e3",
    "1e",
    ".",
    "+",
    "1.2.3",
]


@pytest.mark.parametrize(("text", "expected"), NUMBERS, ids=[t for t, _ in NUMBERS])
def test_every_yaml12_number_notation(text, expected):
    for value in (load_yaml_text(text), load_yaml_text(f"lr: {text}")["lr"], parse_value(text)):
        assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text", [".nan", ".NaN", ".NAN"])
def test_nan(text):
    assert math.isnan(load_yaml_text(text))


@pytest.mark.parametrize("text", NOT_NUMBERS)
def test_forms_outside_the_core_schema_are_strings(text):
    assert load_yaml_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("yes", "yes"),  # 1.1 booleans are strings in 1.2
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("null", None),
        ("Null", None),
        ("~", None),
        ("", None),
        ("2024-01-01", "2024-01-01"),  # 1.1 timestamp
    ],
)
def test_bools_nulls_and_other_scalars(text, expected):
    assert load_yaml_text(f"k: {text}")["k"] == expected


def test_explicit_tags_and_anchors_still_work():
    data = load_yaml_text("a: !!float 1\nb: !!int 0x1F\nbase: &b {x: 1}\nc: {<<: *b, y: 2}")
    assert data == {"a": 1.0, "b": 31, "base": {"x": 1}, "c": {"x": 1, "y": 2}}
    with pytest.raises(BadInput, match="not valid YAML"):
        load_yaml_text("a: !!int 1_000")


def test_dump_quotes_strings_that_either_yaml_version_reads_otherwise():
    data = {"a": "1e-3", "b": "yes", "c": "010", "d": "0o7", "e": 1e-5, "f": math.inf, "g": 0.001}
    text = dump_yaml(data)
    assert load_yaml_text(text) == data
    assert yaml.safe_load(text) == data  # a YAML 1.1 reader agrees


def test_spec_file_and_overrides_take_scientific_notation(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        "finetune: {lr: 1e-3, weight_decay: 5e-4, epochs: 1E1}\n"
        "dense: {lr: .05}\nthreat: {epsilon: 3.1e-2}\n"
    )
    raw = apply_overrides(load_yaml(path), ["finetune.lr=5e-4", "prune.sparsity=+7e-1"])
    config = parse_trial_config(raw)
    assert config.finetune.lr == 5e-4
    assert config.finetune.weight_decay == 5e-4
    assert config.finetune.epochs == 10 and isinstance(config.finetune.epochs, int)
    assert config.dense.lr == 0.05
    assert config.threat.epsilon == 0.031
    assert config.prune.sparsity == 0.7


def test_search_spec_distributions_take_scientific_notation(tmp_path: Path):
    from search.spec.parse import load_spec

    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: sci\n"
        "finetune: {lr: {loguniform: [1e-4, 1e-1]}, weight_decay: {choice: [5e-4, 1E-3]}}\n"
        "search: {mode: random, num_samples: 2}\n"
    )
    spec = load_spec(path, storage=str(tmp_path / "exps"), overrides=["finetune.epochs=2e0"])
    assert spec.dist("finetune.lr").args == (1e-4, 0.1)
    assert spec.dist("finetune.weight_decay").args == (5e-4, 1e-3)
    assert load_yaml_text(spec.to_yaml())["finetune"]["lr"] == {"loguniform": [1e-4, 0.1]}


def test_run_cli_spec_with_lr_1e3_runs(tmp_path: Path):
    """`robprune run` end to end on a spec that writes its rates as researchers do."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: sci\nseed: 0\ndevice: cpu\n"
        f"cache_dir: {tmp_path / 'cache'}\n"
        "data: {dataset: digits, train_limit: 300}\n"
        "model: {arch: small_cnn, width: 0.5}\n"
        "dense: {method: ce, epochs: 1, lr: 5e-2, batch_size: 64}\n"
        "prune: {sparsity: 5e-1, criterion: l1, ratio: uniform}\n"
        "finetune: {method: ce, epochs: 1, lr: 1e-3, weight_decay: 5e-4, batch_size: 64}\n"
        "threat: {train_steps: 2}\n"
        "eval: {attacks: [fgsm, pgd2], primary: pgd2, epoch_attack: pgd2, epoch_subset: 50,"
        " test_limit: 60}\n"
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "cli", "run", str(spec), "-o", str(out)]
        + ["--set", "finetune.momentum=9e-1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    resolved = load_yaml_text((out / "config.yaml").read_text())
    assert resolved["finetune"]["lr"] == 1e-3
    assert resolved["finetune"]["momentum"] == 0.9
    assert resolved["dense"]["lr"] == 0.05
    result = json.loads((out / "result.json").read_text())
    assert 0.0 <= result["metrics"]["robust_acc"] <= 1.0
