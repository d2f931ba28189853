"""Attacks by name, so that an evaluation list is plain data (`eval.attacks: [fgsm, pgd20]`).

Names: `fgsm`, `pgd{K}`, `pgd{K}_l2`, `cw{K}`, `apgd_ce[{K}]`, `apgd_t[{K}]` (APGD: 100 steps
unless K is given). `step_size` is the step of the iterative attacks PGD and CW (default
epsilon / 4: 2/255 at 8/255, Madry et al.'s eval setting; with K >= 10 steps the walk covers
the ball 2.5 times). It does not apply to FGSM, which by definition takes one step of the full
epsilon, nor to APGD, whose step schedule is its own (it starts at 2 * epsilon and halves on
stagnation); their recorded configs say what they used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from robprune.config import ResolvedThreat
from robprune.config.names import ATTACKS, parse_attack_name

from .apgd import apgd, apgd_targeted
from .core import NORMS, eval_mode, fgsm, pgd

__all__ = ["ATTACKS", "Attack", "build_attack", "threat_attack", "robust_accuracy"]

_APGD_TARGETS = 9


@dataclass(frozen=True, kw_only=True)
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
    l2_epsilon: float | None = None,
) -> Attack:
    """The attack called `name` at this threat model; `ValueError` names the bad argument.

    `norm` applies to every attack (`pgd{K}_l2` is L2 whatever `norm` says). `step_size` is
    the PGD/CW step; FGSM steps epsilon and APGD runs its own schedule (module docstring).
    `l2_epsilon` is the radius of `pgd{K}_l2` under an L-inf threat (an L-inf radius such as
    8/255 means nothing as an L2 one), with step l2_epsilon / 4; without it the attack keeps
    `epsilon`. The name grammar is `robprune.config.names`, shared with the config.
    """
    parsed = parse_attack_name(name)
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if not (isinstance(epsilon, int | float) and math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a positive number, got {epsilon!r}")
    if step_size is not None and not (math.isfinite(step_size) and step_size > 0):
        raise ValueError(f"step_size must be a positive number, got {step_size!r}")
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts}")
    epsilon = float(epsilon)
    common = {"name": name, "epsilon": epsilon, "steps": parsed.steps, "loss": parsed.loss}
    if parsed.kind == "fgsm":
        return Attack(kind="fgsm", norm=norm, step_size=epsilon, **common)
    if parsed.kind == "pgd" and parsed.l2 and norm != "l2" and l2_epsilon is not None:
        if not (math.isfinite(l2_epsilon) and l2_epsilon > 0):
            raise ValueError(f"l2_epsilon must be a positive number, got {l2_epsilon!r}")
        common["epsilon"] = float(l2_epsilon)
        return Attack(
            kind="pgd",
            norm="l2",
            step_size=float(l2_epsilon) / 4,
            restarts=restarts,
            random_start=True,
            **common,
        )
    if parsed.kind == "pgd":
        return Attack(
            kind="pgd",
            norm="l2" if parsed.l2 else norm,
            step_size=step_size or epsilon / 4,
            restarts=restarts,
            random_start=True,
            **common,
        )
    # APGD adapts its own step size (from 2 * epsilon).
    return Attack(
        kind=parsed.kind, norm=norm, step_size=None, restarts=restarts, random_start=True, **common
    )


def threat_attack(name: str, threat: ResolvedThreat) -> Attack:
    """The attack called `name` at a trial's resolved threat model."""
    return build_attack(
        name,
        epsilon=threat.epsilon,
        step_size=threat.step_size,
        norm=threat.norm,
        l2_epsilon=threat.l2_epsilon,
    )


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
