"""The `runtime` section: no host sync inside an epoch, and every switch honoured."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from robprune.config import ModelConfig, TrainRecipe, parse_trial_config
from robprune.data import TensorSplit, iterate_batches, load_data, place_split
from robprune.errors import ConfigError, TrialFailed
from robprune.runtime import Runtime, resolve_runtime
from robprune.training import AdversarialSetting, Trainer
from robprune.trial.builders import build_model
from tests.support.requirements import cuda_only

CPU = torch.device("cpu")
ADV = AdversarialSetting(epsilon=0.1, step_size=0.025, steps=2)
cuda = cuda_only()


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", train_limit=200)


def _model(data, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(arch="small_cnn", width=0.5), data)


def _trainer(model, data, *, runtime=None, method="ce", batch_size=64, seed=0, lr=0.05):
    return Trainer(
        recipe=TrainRecipe(
            method=method,
            epochs=5,
            lr=lr,
            schedule="constant",
            batch_size=batch_size,
            weight_decay=0.0,
        ),
        model=model,
        train=data.train,
        augment=False,
        device=CPU,
        seed=seed,
        adversarial=ADV,
        runtime=runtime,
    )


class InfAtCall(nn.Module):
    """Wraps a model; its `n`-th forward in train mode returns infinite logits."""

    def __init__(self, inner: nn.Module, n: int):
        super().__init__()
        self.inner, self.n, self.calls = inner, n, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls == self.n:
                return out * float("inf")
        return out


@pytest.mark.parametrize("check_every", [0, 1, 2, 50])
def test_nonfinite_loss_names_epoch_and_step_without_a_per_step_sync(digits, check_every):
    # 200 training examples / batch 64 = 3 steps per epoch: the 5th train-mode forward is
    # epoch 2, step 2, whichever step the flag is read back at.
    model = InfAtCall(_model(digits), n=5)
    trainer = _trainer(model, digits, runtime=Runtime(device=CPU, check_every=check_every))
    assert trainer.steps_per_epoch == 3
    trainer.run_epoch()
    with pytest.raises(
        TrialFailed, match=r"non-finite training loss \((nan|inf)\) at epoch 2, step 2"
    ):
        trainer.run_epoch()


def test_an_epoch_reads_the_device_once(digits, monkeypatch):
    """With check_every=0 the number of host reads does not grow with the number of steps."""
    reads = {"n": 0}
    for name in ("item", "__bool__", "__int__", "__float__", "tolist"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _original=original, **kwargs):
            reads["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    counts = []
    for batch_size in (90, 18):  # 2 and 11 steps
        trainer = _trainer(
            _model(digits),
            digits,
            runtime=Runtime(device=CPU, check_every=0),
            method="pgd_at",
            batch_size=batch_size,
        )
        reads["n"] = 0
        trainer.run_epoch()
        counts.append(reads["n"])
    assert counts[0] == counts[1] <= 3, counts


def test_runtime_section_is_validated_and_resolved():
    config = parse_trial_config({"runtime": {"compile": "on", "amp": "off", "check_every": 0}})
    assert config.to_dict()["runtime"] == {
        "compile": "on",
        "amp": "off",
        "channels_last": "auto",
        "data_on_device": "auto",
        "check_every": 0,
    }
    runtime = resolve_runtime(config.runtime, CPU)
    assert (runtime.compile, runtime.amp, runtime.channels_last) == (True, False, True)
    auto = resolve_runtime(parse_trial_config({}).runtime, CPU)
    assert (auto.compile, auto.amp, auto.channels_last) == (False, False, True)
    with pytest.raises(ConfigError, match=r"runtime\.compile: .*auto, on, off"):
        parse_trial_config({"runtime": {"compile": "yes"}})
    with pytest.raises(ConfigError, match=r"runtime\.check_every"):
        parse_trial_config({"runtime": {"check_every": -1}})


def test_amp_and_channels_last_are_honoured_on_cpu(digits):
    seen = []
    model = _model(digits)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    conv.register_forward_hook(
        lambda m, args, out: seen.append(
            (out.dtype, args[0].is_contiguous(memory_format=torch.channels_last))
        )
    )
    runtime = Runtime(device=CPU, amp=True, channels_last=True)
    trainer = _trainer(model, digits, runtime=runtime, method="fgsm_rs")
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    stats = trainer.run_epoch()
    assert torch.isfinite(torch.tensor(stats.train_loss))
    assert seen and all(dtype == torch.bfloat16 and nhwc for dtype, nhwc in seen)


@pytest.mark.slow
def test_compile_on_compiles_and_matches_eager(digits):
    """`compile: on` really calls torch.compile on CPU, and trains to the same losses."""
    small = load_data("digits", train_limit=140)
    losses = {}
    for flag in (False, True):
        trainer = _trainer(
            _model(small), small, runtime=Runtime(device=CPU, compile=flag), batch_size=64
        )
        assert isinstance(trainer._forward, torch._dynamo.eval_frame.OptimizedModule) is flag
        losses[flag] = [trainer.run_epoch().train_loss for _ in range(2)]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4, abs=1e-5)


def test_place_split_on_cpu_is_a_no_op_copy(digits):
    placed = place_split(digits.train, CPU, "fit")
    assert placed.x.device == CPU and torch.equal(placed.x, digits.train.x)
    with pytest.raises(ValueError, match="placement"):
        place_split(digits.train, CPU, "gpu")


@cuda
def test_cuda_epoch_has_no_host_sync(digits):
    dev = torch.device("cuda")
    model = _model(digits).to(dev)
    trainer = Trainer(
        recipe=TrainRecipe(epochs=2, lr=0.05, batch_size=32),
        model=model,
        train=digits.train,
        augment=True,
        device=dev,
        seed=0,
        adversarial=ADV,
        runtime=Runtime(device=dev, amp=True, channels_last=True, check_every=0),
    )
    assert trainer.train.x.device.type == "cuda"
    trainer.run_epoch()  # warm-up: lazy CUDA initialisation may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        # the end-of-epoch flag read is the one sync allowed: everything before it must pass
        with pytest.raises(RuntimeError, match="synchroniz"):
            trainer.run_epoch()
        assert trainer.epoch == 1  # it failed at the final read, not earlier in the epoch
    finally:
        torch.cuda.set_sync_debug_mode(0)


@cuda
def test_batches_and_augmentation_stay_on_cuda(digits):
    dev = torch.device("cuda")
    split = TensorSplit(
        x=torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8), y=torch.arange(64) % 10
    )
    placed = place_split(split, dev, "device")
    gen = torch.Generator(device=dev).manual_seed(0)
    for x, y in iterate_batches(
        placed, batch_size=32, shuffle=True, augment=True, generator=gen, device=dev
    ):
        assert x.device.type == "cuda" and x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32)
        assert y.device.type == "cuda"
    host = place_split(split, dev, "host")
    assert host.x.device.type == "cpu" and host.x.is_pinned()


def _digits_accuracy(data, runtime, seed):
    """Clean and PGD-10 test accuracy (fp32 evaluation) after PGD-AT from scratch on digits."""
    from robprune.attacks import build_attack
    from robprune.evaluation.accuracy import accuracy_under

    trainer = Trainer(
        recipe=TrainRecipe(epochs=8, lr=0.05, batch_size=64),
        model=_model(data, seed),
        train=data.train,
        augment=False,
        device=CPU,
        seed=seed,
        adversarial=AdversarialSetting(epsilon=0.1, step_size=0.025, steps=3),
        runtime=runtime,
    )
    losses = [trainer.run_epoch().train_loss for _ in range(8)]
    model = trainer.model.to(memory_format=torch.contiguous_format)
    pgd = build_attack("pgd10", epsilon=0.1)
    kw = {"batch_size": 256, "device": CPU}
    clean = accuracy_under(model, data.test, None, **kw).accuracy
    robust = accuracy_under(model, data.test, pgd, **kw).accuracy
    return clean, robust, losses


def test_digits_accuracy_matches_the_fp32_path_within_seed_noise():
    """The previous path (fp32, NCHW, a host read every step) against the new ones: reading
    the non-finite flag once per epoch changes no number; the default CPU runtime
    (channels_last) and bf16 + channels_last land within the seed-to-seed spread."""
    data = load_data("digits", train_limit=600)
    previous = Runtime(device=CPU, check_every=1)
    fp32 = {seed: _digits_accuracy(data, previous, seed) for seed in (0, 1)}
    assert _digits_accuracy(data, replace(previous, check_every=0), 0) == fp32[0]  # to the bit
    for runtime in (Runtime.default(CPU), Runtime(device=CPU, amp=True, channels_last=True)):
        new = _digits_accuracy(data, runtime, 0)
        for i, name in ((0, "clean"), (1, "robust")):
            values = [fp32[s][i] for s in fp32]
            noise = max(values) - min(values)
            assert values[0] > (0.5 if i == 0 else 0.2), (name, values)
            assert abs(new[i] - fp32[0][i]) <= max(0.03, 2 * noise), (runtime, name, new, values)


@cuda
def test_pgd_in_bf16_is_as_strong_as_in_fp32():
    """bf16 autocast must not flatten the attack: robust accuracy at most 1 point higher."""
    from robprune.attacks import build_attack
    from robprune.evaluation.accuracy import accuracy_under

    dev = torch.device("cuda")
    data = load_data("digits")
    trainer = Trainer(
        recipe=TrainRecipe(lr=0.05, batch_size=64),
        model=_model(data).to(dev),
        train=data.train,
        augment=False,
        device=dev,
        seed=0,
        adversarial=AdversarialSetting(epsilon=0.1, step_size=0.025, steps=5),
        runtime=Runtime(device=dev),
    )
    for _ in range(10):
        trainer.run_epoch()
    pgd = build_attack("pgd20", epsilon=0.1)
    acc = {}
    for amp in (False, True):
        runtime = Runtime(device=dev, amp=amp, channels_last=amp)
        kw = {"batch_size": 512, "device": dev, "runtime": runtime}
        acc[amp] = accuracy_under(trainer.model, data.test, pgd, **kw).accuracy
    assert acc[False] < 0.9  # the attack bites at all
    assert acc[True] <= acc[False] + 0.01, acc
