"""Bring-your-own dense model: AutoAttack's ResNet-18 checkpoint mapped onto our `resnet18`.

The reference is the kuangliu CIFAR ResNet-18 that `pyautoattack/examples/model_test.pt` was
saved from, written out here (it is what `pyautoattack/examples/resnet.py` holds) so the test
does not import the package's example scripts.
"""

from __future__ import annotations

from pathlib import Path

import pyautoattack
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robprune.errors import ConfigError
from robprune.models import create_model
from robprune.models.checkpoints import load_state_dict_file, map_state_dict
from tests.support.paths import ROOT

MODEL_TEST = Path(pyautoattack.__file__).parent / "examples" / "model_test.pt"


class _KuangliuBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class _KuangliuResNet18(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = self._make_layer(64, 2, 1)
        self.layer2 = self._make_layer(128, 2, 2)
        self.layer3 = self._make_layer(256, 2, 2)
        self.layer4 = self._make_layer(512, 2, 2)
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(_KuangliuBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4).view(out.size(0), -1)
        return self.linear(out)


def _ours(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)) -> nn.Module:
    return create_model(
        "resnet18", num_classes=10, input_shape=(3, 32, 32), mean=mean, std=std
    ).eval()


@pytest.fixture(scope="module")
def mapped():
    state = load_state_dict_file(MODEL_TEST)
    assert len(state) == 122
    original = _KuangliuResNet18()
    original.load_state_dict(state)  # the file really is the kuangliu layout
    ours = _ours()
    weights, layout = map_state_dict(state, ours, "resnet18")
    assert layout == "kuangliu"
    ours.load_state_dict(weights)
    return original.eval(), ours


def test_mapped_model_reproduces_original_logits(mapped):
    original, ours = mapped
    x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = original(x), ours(x)
    assert expected.abs().max() > 0.1  # a real model, not zeros
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_mapped_model_prunes_with_mrs_ratios(mapped):
    from robprune.pruning import module_robust_sensitivity, prune_model

    _, ours = mapped
    model = _ours()
    model.load_state_dict(ours.state_dict())
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(8, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (8,), generator=gen)
    layers = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}
    mrs = module_robust_sensitivity(model, layers, x, y, estimator="first_order", epsilon=0.1)
    outcome = prune_model(
        model,
        example=x[:2],
        criterion="l1",
        sparsity=0.5,
        rule="mrs",
        max_ratio=0.9,
        layer_mrs=mrs,
        calib=(x, y),
        seed=0,
    )
    assert abs(outcome.achieved_sparsity - 0.5) < 0.02
    assert outcome.params < outcome.params_dense
    ratios = {row["ratio"] for row in outcome.layers if row.get("ratio") is not None}
    assert len(ratios) > 1  # MRS gave layers different ratios, not one uniform ratio
    with torch.no_grad():
        out = model.eval()(torch.rand(3, 3, 32, 32))
    assert out.shape == (3, 10) and torch.isfinite(out).all()


def test_module_prefix_and_wrapper_are_unwrapped(tmp_path):
    model = _ours()
    wrapped = {"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}
    torch.save(wrapped, tmp_path / "wrapped.pt")
    state = load_state_dict_file(tmp_path / "wrapped.pt")
    weights, layout = map_state_dict(state, _ours(), "resnet18")
    assert layout == "robprune" and set(weights) == set(model.state_dict())


def test_bad_checkpoints_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match=r"^dense\.checkpoint: no such file"):
        load_state_dict_file(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match=r"^dense\.checkpoint: .*is not a state dict"):
        load_state_dict_file(tmp_path / "text.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ConfigError, match="is not a state dict"):
        load_state_dict_file(tmp_path / "list.pt")
    small = create_model("small_cnn", num_classes=10, input_shape=(1, 8, 8), mean=(0,), std=(1,))
    state = load_state_dict_file(MODEL_TEST)
    with pytest.raises(ConfigError) as err:
        map_state_dict(state, small, "small_cnn")
    message = str(err.value)
    assert "does not fit small_cnn" in message and "\n" not in message
    assert "missing keys [" in message and "unexpected keys [" in message
    wrong_classes = create_model(
        "resnet18", num_classes=100, input_shape=(3, 32, 32), mean=(0,) * 3, std=(1,) * 3
    )
    with pytest.raises(ConfigError, match=r"shape mismatches \[classifier.weight"):
        map_state_dict(state, wrong_classes, "resnet18")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("eval.autoattack=all", "eval.autoattack: unknown 'all'; allowed: none, standard, rand"),
        ("eval.autoattack=finalists", "eval.autoattack: finalists applies to a search"),
        ("eval.finalists=0", "eval.finalists: must be in [1, 10000], got 0"),
        ("dense.checkpoint=MISSING", "dense.checkpoint: no such file"),
        ("dense.checkpoint=TEXT", "is not a state dict"),
        (
            "dense.checkpoint=MODEL_TEST",
            "dense.checkpoint: does not fit digits_cnn in any known layout",
        ),
    ],
)
def test_run_bad_input_is_one_line_exit_2(tmp_path, capsys, override, expected):
    from cli import main as cli_main

    (tmp_path / "text.pt").write_text("not a checkpoint")
    override = (
        override.replace("MISSING", str(tmp_path / "missing.pt"))
        .replace("TEXT", str(tmp_path / "text.pt"))
        .replace("MODEL_TEST", str(MODEL_TEST))
    )
    spec = ROOT / "examples" / "digits.yaml"
    args = ["run", str(spec), "--set", override, "--set", f"cache_dir={tmp_path / 'cache'}"]
    assert cli_main([*args, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists() and not list((tmp_path).glob("cache/dense/*/meta.json"))


def test_brought_dense_model_runs_a_whole_trial(tmp_path, dense_cache):
    """A digits model saved elsewhere (DataParallel prefix, wrapped) is brought, not trained:
    the trial prunes (MRS), fine-tunes and evaluates it, and records the file's hash."""
    from robprune.config import parse_trial_config
    from robprune.io.dense_cache import file_sha256
    from robprune.trial import run_trial
    from robprune.trial.dense import ensure_dense_for
    from tests.support.trials import fast_trial

    trained = ensure_dense_for(parse_trial_config(fast_trial(dense_cache)), log=lambda m: None)
    state = {f"module.{k}": v for k, v in trained.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "brought.pt")
    config = fast_trial(
        tmp_path / "cache",
        dense={"checkpoint": str(tmp_path / "brought.pt"), "normalize": "dataset"},
        prune={"ratio": "mrs"},
        finetune={"method": "ce", "epochs": 1},
    )
    result = run_trial(config)
    m = result.metrics
    assert m["dense_checkpoint_sha256"] == file_sha256(tmp_path / "brought.pt")
    meta = next((tmp_path / "cache").glob("dense/*/meta.json")).read_text()
    assert '"layout": "robprune"' in meta and '"history"' not in meta  # loaded, not trained
    assert m["params"] < m["params_dense"] and m["epochs_completed"] == 1
    assert m["dense_clean_acc"] > 0.5  # the brought weights, not a fresh initialisation
    assert len({row["ratio"] for row in result.layers}) > 1
