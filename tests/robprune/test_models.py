"""Model registry: every arch builds, forwards, prunes with Torch-Pruning and round-trips."""

from __future__ import annotations

import io

import pytest
import torch
import torch_pruning as tp
from torch import nn

from robprune.errors import ConfigError
from robprune.models import (
    MODELS,
    Normalize,
    create_model,
    list_models,
    load_pruned_state_dict,
    pruned_state_dict,
)

CIFAR = {"input_shape": (3, 32, 32), "mean": (0.49, 0.48, 0.45), "std": (0.25, 0.24, 0.26)}
EXPECTED = {
    "small_cnn", "digits_cnn", "vgg_small", "resnet18", "resnet34", "resnet50", "vgg11_bn",
    "vgg16_bn", "mobilenetv2", "wrn28", "wrn28_4", "wrn28_10", "mobilevit_xxs",
}  # fmt: skip
# Known parameter counts of the CIFAR variants at width 1 with 10 classes.
PARAMS = {"resnet18": 11_173_962, "resnet34": 21_282_122, "resnet50": 23_520_842,
          "wrn28_10": 36_479_194, "wrn28_4": 5_849_050}  # fmt: skip
# Reduced widths keep the pruning tests fast; the structure (and so the graph) is unchanged.
PRUNE_WIDTH = {"resnet18": 0.25, "resnet34": 0.25, "resnet50": 0.25, "vgg11_bn": 0.25,
               "vgg16_bn": 0.25, "mobilenetv2": 0.5, "wrn28": 2, "wrn28_4": 0.5,
               "wrn28_10": 0.2}  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread for this file, restored afterwards.

    The calls here are tiny: on a shared 2-core machine, OpenMP threads spinning at barriers
    made this file 5-15x slower than a single thread.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def test_registry_names() -> None:
    assert EXPECTED <= set(list_models())
    assert list_models() == sorted(MODELS)


def test_unknown_arch_is_a_value_error_naming_the_argument() -> None:
    """The registry names its own argument; test_config checks `model.arch` at validation."""
    with pytest.raises(ValueError) as info:
        create_model("nope", num_classes=10, **CIFAR)
    assert not isinstance(info.value, ConfigError)
    assert str(info.value).startswith("arch: unknown 'nope'; allowed: ")
    assert "resnet18" in str(info.value)


@pytest.mark.parametrize("width", [0, -1.0, "2"])
def test_bad_width_is_a_value_error_naming_the_argument(width: object) -> None:
    with pytest.raises(ValueError, match=r"^width must be a positive number"):
        create_model("small_cnn", num_classes=10, width=width, **CIFAR)  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_builds_and_forwards_cifar(arch: str) -> None:
    torch.manual_seed(0)
    model = create_model(arch, num_classes=10, **CIFAR).eval()
    assert isinstance(next(iter(model.children())), Normalize)
    assert isinstance(model.classifier, nn.Linear) and model.classifier.out_features == 10
    assert [m for m in model.modules() if isinstance(m, nn.Linear)][-1] is model.classifier
    assert all(isinstance(m, nn.Module) for m in model.unprunable_modules())
    if arch in PARAMS:
        assert _params(model) == PARAMS[arch]
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_small_cnn_on_digits_shape() -> None:
    digits = {"input_shape": (1, 8, 8), "mean": (0.3,), "std": (0.4,)}
    model = create_model("small_cnn", num_classes=10, **digits)
    out = model(torch.rand(4, 1, 8, 8))
    assert out.shape == (4, 10)
    out.sum().backward()


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 64, 64)])
def test_every_arch_runs_on_small_and_large_inputs(shape: tuple[int, int, int]) -> None:
    for arch in sorted(EXPECTED):
        width = 1 if arch == "wrn28" else 0.25
        model = create_model(
            arch, num_classes=5, input_shape=shape, mean=(0.5,), std=(0.5,), width=width
        ).eval()
        with torch.no_grad():
            assert model(torch.rand(1, *shape)).shape == (1, 5), arch


def test_normalize_is_applied_and_is_a_buffer() -> None:
    torch.manual_seed(0)
    a = create_model("small_cnn", num_classes=3, **CIFAR).eval()
    b = create_model("small_cnn", num_classes=3, **{**CIFAR, "mean": (0.0, 0.0, 0.0)}).eval()
    state = {k: v for k, v in a.state_dict().items() if not k.startswith("normalize.")}
    b.load_state_dict(state, strict=False)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(a(x), b(x))
    assert {"normalize.mean", "normalize.std"} <= set(a.state_dict())
    assert all(not n.startswith("normalize.") for n, _ in a.named_parameters())
    assert a.to(torch.float64).normalize.mean.dtype == torch.float64
    norm = Normalize((0.5,), (0.25,))
    assert torch.allclose(norm(torch.full((1, 2, 1, 1), 0.75)), torch.ones(1, 2, 1, 1))


def _prune(arch: str, shape: tuple[int, int, int] = (3, 32, 32)) -> tuple[nn.Module, dict]:
    kwargs = {
        "num_classes": 10,
        "input_shape": shape,
        "mean": (0.5,) * shape[0],
        "std": (0.25,) * shape[0],
        "width": PRUNE_WIDTH.get(arch),
    }
    torch.manual_seed(0)
    model = create_model(arch, **kwargs).eval()
    for m in model.modules():  # non-trivial BN statistics, so buffers matter in the round trip
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    dense = _params(model)
    pruner = tp.pruner.MetaPruner(
        model,
        torch.rand(1, *shape),
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=0.5,
        ignored_layers=[_first_conv(model), model.classifier, *model.unprunable_modules()],
    )
    pruner.step()
    assert _params(model) < 0.6 * dense, arch
    return model, kwargs


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_prunes_and_round_trips(arch: str) -> None:
    model, kwargs = _prune(arch)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    assert expected.shape == (2, 10)

    buffer = io.BytesIO()
    torch.save(pruned_state_dict(model), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = load_pruned_state_dict(create_model(arch, **kwargs), state).eval()
    assert _params(fresh) == _params(model)
    with torch.no_grad():
        assert torch.equal(fresh(x), expected)


def test_small_cnn_prunes_on_digits() -> None:
    model, _ = _prune("small_cnn", (1, 8, 8))
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_tp_state_dict_is_not_weights_only_safe() -> None:
    """Why `pruned_state_dict` exists: tp 1.6.1's `tp.state_dict` pickles module objects."""
    model = create_model("small_cnn", num_classes=3, **CIFAR)
    buffer = io.BytesIO()
    torch.save(tp.state_dict(model), buffer)
    buffer.seek(0)
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        torch.load(buffer, weights_only=True)


def test_load_rejects_other_formats() -> None:
    model = create_model("small_cnn", num_classes=3, **CIFAR)
    with pytest.raises(ValueError, match="not a"):
        load_pruned_state_dict(model, {"state_dict": model.state_dict()})
