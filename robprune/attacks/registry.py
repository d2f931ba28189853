"""Attacks by name, so that an evaluation list is plain data (`eval.attacks: [fgsm, pgd20]`).

Names: `fgsm`, `pgd{K}`, `pgd{K}_l2`, `cw{K}`, `apgd_ce[{K}]`, `apgd_t[{K}]` (APGD: 100 steps
unless K is given). Default step sizes, when the caller gives none: epsilon / 4 for PGD and
CW (2/255 at 8/255: Madry et al.'s eval setting; with K >= 10 steps the walk covers the ball
2.5 times), epsilon for FGSM; APGD adapts its own step from 2 * epsilon.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from robprune.errors import ConfigError

from .apgd import apgd, apgd_targeted
from .core import NORMS, eval_mode, fgsm, pgd

__all__ = ["ATTACKS", "Attack", "build_attack", "robust_accuracy"]

ATTACKS: tuple[str, ...] = (
    "fgsm",
    "pgd{K}",
    "pgd{K}_l2",
    "cw{K}",
    "apgd_ce",
    "apgd_ce{K}",
    "apgd_t",
    "apgd_t{K}",
)
"""Allowed attack names; {K} is the number of steps (a positive integer)."""

_NAME = re.compile(
    r"^(?:(?P<fgsm>fgsm)|pgd(?P<pgd>\d+)(?P<l2>_l2)?|cw(?P<cw>\d+)"
    r"|apgd_(?P<apgd>ce|t)(?P<apgd_steps>\d+)?)$"
)
_APGD_STEPS = 100
_APGD_TARGETS = 9


@dataclass(frozen=True)
class Attack:
    """A configured attack: `attack(model, x, y) -> x_adv`, with its settings as data."""

    name: str
    kind: str
    """fgsm | pgd | apgd | apgd_t: which function runs."""
    norm: str
    epsilon: float
    step_size: float | None
    """None for APGD (adaptive, starts at 2 * epsilon)."""
    steps: int
    restarts: int = 1
    random_start: bool = False
    loss: str = "ce"

    def config(self) -> dict[str, Any]:
        """JSON-able settings, recorded with results (`attack_config_json`)."""
        out: dict[str, Any] = {
            "name": self.name,
            "norm": self.norm,
            "epsilon": self.epsilon,
            "step_size": self.step_size,
            "steps": self.steps,
            "restarts": self.restarts,
            "random_start": self.random_start,
            "loss": self.loss,
        }
        if self.kind == "apgd_t":
            out["targets"] = _APGD_TARGETS
        return out

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        if self.kind == "fgsm":
            return fgsm(
                model,
                x,
                y,
                epsilon=self.epsilon,
                step_size=self.step_size,
                random_start=self.random_start,
                norm=self.norm,
                loss=self.loss,
                generator=generator,
            )
        if self.kind == "pgd":
            assert self.step_size is not None
            return pgd(
                model,
                x,
                y,
                epsilon=self.epsilon,
                step_size=self.step_size,
                steps=self.steps,
                norm=self.norm,
                random_start=self.random_start,
                restarts=self.restarts,
                loss=self.loss,
                generator=generator,
            )
        if self.kind == "apgd":
            return apgd(
                model,
                x,
                y,
                epsilon=self.epsilon,
                norm=self.norm,
                steps=self.steps,
                restarts=self.restarts,
                loss=self.loss,
                generator=generator,
            )
        return apgd_targeted(
            model,
            x,
            y,
            epsilon=self.epsilon,
            norm=self.norm,
            steps=self.steps,
            restarts=self.restarts,
            num_targets=_APGD_TARGETS,
            generator=generator,
        )


def build_attack(
    name: str,
    *,
    epsilon: float,
    step_size: float | None = None,
    norm: str = "linf",
    restarts: int = 1,
) -> Attack:
    """The attack called `name` at this threat model; ConfigError names the bad key.

    `norm` applies to every attack (`pgd{K}_l2` is L2 whatever `norm` says). `step_size`
    is ignored by APGD.
    """
    match = _NAME.match(name) if isinstance(name, str) else None
    steps = None
    if match:
        steps = next(
            (
                int(v)
                for k, v in match.groupdict().items()
                if k in ("pgd", "cw", "apgd_steps") and v is not None
            ),
            None,
        )
    if match is None or steps == 0:
        raise ConfigError(
            "eval.attacks",
            f"unknown attack {name!r}; allowed: "
            f"{', '.join(ATTACKS)} with K a positive number of steps",
        )
    if norm not in NORMS:
        raise ConfigError("threat.norm", f"must be one of {', '.join(NORMS)}, got {norm!r}")
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise ConfigError("threat.epsilon", f"must be a positive number, got {epsilon!r}")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise ConfigError("threat.step_size", f"must be a positive number, got {step_size!r}")
    if restarts < 1:
        raise ConfigError("eval.restarts", f"must be >= 1, got {restarts}")
    epsilon = float(epsilon)
    groups = match.groupdict()
    if groups["fgsm"]:
        return Attack(name, "fgsm", norm, epsilon, step_size or epsilon, 1)
    if groups["pgd"] or groups["cw"]:
        return Attack(
            name,
            "pgd",
            "l2" if groups["l2"] else norm,
            epsilon,
            step_size or epsilon / 4,
            int(steps or 0),
            restarts,
            True,
            "cw" if groups["cw"] else "ce",
        )
    apgd_steps = steps or _APGD_STEPS
    if groups["apgd"] == "ce":
        return Attack(name, "apgd", norm, epsilon, None, apgd_steps, restarts, True, "ce")
    return Attack(name, "apgd_t", norm, epsilon, None, apgd_steps, restarts, True, "dlr_targeted")


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def robust_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: Any = None,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> float:
    """Accuracy under `attack` (any `(model, x, y) -> x_adv`; None for clean accuracy).

    `x` may be uint8 in [0, 255] (divided by 255) or float in [0, 1]; it can stay on the CPU,
    each batch moves to `device` (default: the model's). One host sync, at the end.
    `generator`, when given, is passed on as `attack(..., generator=...)` (an `Attack` takes
    one), so that random starts are reproducible across the whole set.
    """
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x and y need the same non-zero length, got {x.shape[0]}, {y.shape[0]}")
    dev = torch.device(device) if device is not None else _model_device(model)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    kwargs = {"generator": generator} if generator is not None else {}
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size].to(dev, non_blocking=True)
        yb = y[start : start + batch_size].to(dev, non_blocking=True)
        xb = xb.float().div_(255.0) if xb.dtype == torch.uint8 else xb.float()
        if attack is not None:
            xb = attack(model, xb, yb, **kwargs)
        with eval_mode(model), torch.no_grad():
            correct += (model(xb).argmax(dim=1) == yb).sum()
    return correct.item() / x.shape[0]
