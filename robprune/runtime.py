"""Device choice, seeding, and how the hot loops run on that device (`runtime` config section).

`Runtime` is the resolved form of `runtime:` (robprune.config.RuntimeConfig) for one device:
bf16 autocast, channels_last, `torch.compile`, where the training split lives, and how often the
non-finite-loss flag is read back. `auto` picks per device type; the choices and the figures
behind them are in BENCHMARKS.md. Every switch set to `on` is honoured on every device (on the
CPU too, where it is slower: the point is that no option is silently ignored).

Why bf16 and not fp16: bf16 keeps fp32's exponent range, so input gradients of the attacks
neither underflow nor need loss scaling; the attacks compute their loss from logits cast to
fp32 and keep the perturbed input, the step and the projection in fp32 (robprune.attacks.core).
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robprune.errors import ConfigError

__all__ = ["Runtime", "resolve_device", "resolve_runtime", "seed_everything"]

#: `auto` of each switch, per device type (figures in BENCHMARKS.md). CPU: channels_last on
#: (oneDNN convolutions: 15-25% faster steps for small_cnn, vgg_small, mobilenetv2, equal for
#: resnet18); bf16 off (CPU runs are the fp32 reference; the gain depends on the CPU's bf16
#: units: 1.45x per PGD-AT epoch on the AVX512-BF16 development machine, opt in with `amp: on`);
#: compile off (minutes of compilation per pruned architecture). CUDA: bf16 and channels_last
#: on (tensor cores); compile off until measured on a GPU (each pruned model is a new graph,
#: so it pays only when a trial's epochs outweigh the compilation; awaiting measurement).
AUTO: dict[str, dict[str, bool]] = {
    "cpu": {"amp": False, "channels_last": True, "compile": False},
    "cuda": {"amp": True, "channels_last": True, "compile": False},
}
#: `data_on_device` -> where the training split lives (robprune.data.place_split).
_PLACEMENT = {"auto": "fit", "on": "device", "off": "host"}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "CUDA was asked for but is not available; use auto or cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """How training, attacks and MRS run on `device` (all switches resolved to booleans)."""

    device: torch.device
    amp: bool = False
    """bf16 autocast around forward passes (training, attacks, MRS)."""
    channels_last: bool = False
    """Model weights and input batches in NHWC memory format."""
    compile: bool = False
    """`torch.compile` the model the training loop calls."""
    data_placement: str = "fit"
    """Training split on the device when it fits (`fit`), always (`device`), or on the host,
    pinned, with one asynchronous copy per batch (`host`); see robprune.data.place_split."""
    check_every: int = 50
    """Read the device-side non-finite-loss flag back every N steps (0: once per epoch)."""

    @classmethod
    def default(cls, device: torch.device | str) -> Runtime:
        """`auto` for every switch on `device`."""
        device = torch.device(device)
        return cls(device=device, **AUTO.get(device.type, AUTO["cpu"]))

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast on this device when `amp`, else a no-op context."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def format(self, x: torch.Tensor) -> torch.Tensor:
        """An image batch in the memory format the model expects."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move `model` to the device (channels_last when asked), in place; returns it."""
        if self.channels_last:
            return model.to(self.device, memory_format=torch.channels_last)
        return model.to(self.device)

    def compiled(self, model: nn.Module) -> nn.Module:
        """`torch.compile(model)` when `compile`, else `model` (the weights are shared)."""
        if not self.compile:
            return model
        return torch.compile(model)

    def describe(self) -> dict[str, Any]:
        """JSON-able resolved switches (logged with results and benchmarks)."""
        return {
            "device": str(self.device),
            "amp": "bf16" if self.amp else "off",
            "channels_last": self.channels_last,
            "compile": self.compile,
            "data_placement": self.data_placement,
            "check_every": self.check_every,
        }


def _switch(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "on"


def resolve_runtime(section: Any, device: torch.device) -> Runtime:
    """The `runtime` config section (robprune.config.RuntimeConfig) resolved for `device`."""
    auto = AUTO.get(device.type, AUTO["cpu"])
    if section is None:
        return Runtime.default(device)
    return Runtime(
        device=device,
        amp=_switch(section.amp, auto["amp"]),
        channels_last=_switch(section.channels_last, auto["channels_last"]),
        compile=_switch(section.compile, auto["compile"]),
        data_placement=_PLACEMENT[section.data_on_device],
        check_every=section.check_every,
    )
