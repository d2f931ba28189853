"""The official AutoAttack (Croce & Hein 2020; `pyautoattack` 0.2.0 on the package registry).

Only what this module runs is ever called AutoAttack: `LABELS` gives the name every report
prints ("AutoAttack (standard, official)"). Our own APGD-CE/APGD-T stay `apgd_acc`.

The wrapper adds what the package leaves to its caller: the model in eval mode on [0, 1]
pixels, the trial's threat model (norm names mapped to the package's), the seed, batching, and
the global RNG left as it was (the package reseeds torch's global generator). The package's
own checks (randomness, softmax output, zero gradients, dynamic model, Square after the
gradient attacks) only log a warning; they are captured here as `MaskingFlag`s, as are the
cumulative accuracies after each of its attacks.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from .core import eval_mode

__all__ = [
    "AUTOATTACK_VERSIONS",
    "LABELS",
    "AutoAttackOutcome",
    "run_official_attacks",
    "official_checks",
]

#: versions of the official code robprune runs, and the label each is shown with.
AUTOATTACK_VERSIONS = ("standard", "rand")
LABELS = {
    "standard": "AutoAttack (standard, official)",
    "rand": "AutoAttack (rand, official)",
}
_NORMS = {"linf": "Linf", "l2": "L2"}
_LOGGER = "auto-attack"
_STAGE = re.compile(r"robust accuracy after (?P<attack>[A-Z-]+): (?P<acc>[\d.]+)%")
#: package check message -> flag code (see robprune.evaluation.masking.FLAG_MEANINGS)
_CHECKS = (
    ("randomized defense", "aa_randomized"),
    ("probability distribution", "aa_softmax_output"),
    ("zero gradient", "aa_zero_gradients"),
    ("dynamic defense", "aa_dynamic"),
    ("Square Attack has decreased", "aa_square_after_gradient"),
    ("target classes", "aa_n_classes"),
    ("DLR loss", "aa_n_classes"),
)


@dataclass(frozen=True, kw_only=True)
class AutoAttackOutcome:
    """One AutoAttack evaluation: its accuracy, per-example result and what it flagged."""

    version: str
    label: str
    accuracy: float
    clean_accuracy: float
    correct: Tensor = field(repr=False)
    """Per-example: still classified correctly after every attack of the version."""
    stages: dict[str, float]
    """Cumulative robust accuracy after each attack (`apgd-ce`, `apgd-t`, `fab-t`, `square`)."""
    checks: list[tuple[str, str]]
    """(flag code, the package's message) for every check that fired."""
    config: dict[str, Any]
    wall_s: float


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _code(message: str) -> str:
    for needle, code in _CHECKS:
        if needle in message:
            return code
    return "aa_other"


def _device_of(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _config(
    version: str,
    norm: str,
    epsilon: float,
    seed: int,
    n: int,
    *,
    attacks: list[str] | None = None,
) -> dict[str, Any]:
    """The recorded settings of a run: a whole version, or a custom list of its attacks."""
    if attacks:
        custom = _config("standard", norm, epsilon, seed, n)
        custom.update(name=f"autoattack_custom_{'_'.join(attacks)}", version="custom")
        return {**custom, "attacks": list(attacks)}
    return {
        "name": f"autoattack_{version}",
        "label": LABELS[version],
        "implementation": "pyautoattack " + _package_version(),
        "version": version,
        "norm": norm,
        "epsilon": epsilon,
        "seed": seed,
        "examples": n,
    }


def _official() -> ModuleType:
    """The official AutoAttack package, loaded on first use: importing robprune's attacks
    must not pay for it (or need it) when no AutoAttack evaluation is asked for."""
    import pyautoattack

    return pyautoattack


def _package_version() -> str:
    return str(_official().__version__)


def _check_inputs(version: str, norm: str, epsilon: float, x: Tensor, y: Tensor) -> None:
    if version not in AUTOATTACK_VERSIONS:
        raise ValueError(f"unknown AutoAttack version {version!r}; allowed: standard, rand")
    if norm not in _NORMS:
        raise ValueError(f"AutoAttack norm must be one of {', '.join(_NORMS)}, got {norm!r}")
    if not (math.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"x and y need the same non-zero length, got {x.shape[0]}, {y.shape[0]}")
    if x.dtype == torch.uint8 or float(x.min()) < 0 or float(x.max()) > 1:
        raise ValueError("AutoAttack takes float pixels in [0, 1]")


@contextlib.contextmanager
def _captured(name: str) -> Iterator[_Capture]:
    """The package's log records, kept (its progress lines are ours to print, or not)."""
    capture = _Capture()
    logger = logging.getLogger(name)
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield capture
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def _correct(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
    """Per-example correctness of `model` on (x, y), batch by batch, on the CPU."""
    with torch.no_grad():
        return torch.cat(
            [
                model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]
                for i in range(0, len(x), batch_size)
            ]
        ).cpu()


def _check_ball(x_adv: Tensor, x: Tensor, norm: str, epsilon: float) -> None:
    """The package's own bound check, repeated: a perturbation outside the ball is a bug."""
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    if float(size.max()) > epsilon * (1 + 1e-4) + 1e-6:
        raise RuntimeError(f"AutoAttack left the {norm} ball: {float(size.max()):.6g}")


def _read_log(records: list[logging.LogRecord]) -> tuple[dict[str, float], list[tuple[str, str]]]:
    """Accuracy after each stage, and the package's warnings (its model checks)."""
    stages: dict[str, float] = {}
    checks: list[tuple[str, str]] = []
    for record in records:
        message = record.getMessage()
        match = _STAGE.search(message)
        if match:
            stages[match["attack"].lower()] = float(match["acc"]) / 100.0
        elif record.levelno >= logging.WARNING:
            checks.append((_code(message), message))
    return stages, checks


def run_official_attacks(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attacks: list[str] | None = None,
    version: str = "standard",
    norm: str = "linf",
    epsilon: float,
    batch_size: int = 256,
    seed: int = 0,
    state_path: str | Path | None = None,
) -> AutoAttackOutcome:
    """Run the official code: a whole `version`, or (`attacks`) a custom list of its attacks.

    `x` are [0, 1] pixels (any device; batches move to the model's). A `state_path` makes a
    long evaluation resumable (the package's own state file). The global RNG is restored.
    """
    AutoAttack = _official().AutoAttack  # noqa: N806 - the package's class

    _check_inputs(version, norm, epsilon, x, y)
    device = _device_of(model)
    devices = [device] if device.type == "cuda" else []
    start = time.perf_counter()
    with (
        _captured(_LOGGER) as capture,
        eval_mode(model),
        torch.random.fork_rng(devices=devices),
    ):
        adversary = AutoAttack(
            model, norm=_NORMS[norm], eps=float(epsilon), version=version, device=device,
            seed=seed,
        )  # fmt: skip
        if attacks:  # a subset of the version's attacks, each with the version's settings
            adversary.attacks_to_run = list(attacks)
        x_in, y_in = x.detach().float().to(device), y.detach().to(device)
        state = Path(state_path) if state_path is not None else None
        x_adv = adversary.run_standard_evaluation(
            x_in, y_in, batch_size=batch_size, state_path=state
        )[0]
        clean = _correct(model, x_in, y_in, batch_size)
        # a robust example is one the clean model gets right and no attack flips
        correct = _correct(model, x_adv, y_in, batch_size) & clean
        _check_ball(x_adv, x_in, norm, epsilon)
    stages, checks = _read_log(capture.records)
    name = version if not attacks else "custom"
    config = _config(version, norm, epsilon, seed, len(x), attacks=attacks)
    return AutoAttackOutcome(
        version=name,
        label=LABELS.get(name, f"official {', '.join(attacks or [])}"),
        accuracy=float(correct.float().mean()),
        clean_accuracy=float(clean.float().mean()),
        correct=correct,
        stages=stages,
        checks=checks,
        config=config,
        wall_s=time.perf_counter() - start,
    )


def official_checks(model: nn.Module, x: Tensor, y: Tensor) -> list[tuple[str, str]]:
    """The package's model checks alone (randomness, softmax output, dynamic model).

    Cheap (a few forward passes); the zero-gradient and Square checks need an attack run.
    """
    checks = _official().checks
    capture = _Capture()
    logger = logging.getLogger(f"{_LOGGER}.checks")
    logger.addHandler(capture)
    logger.propagate = False
    try:
        with eval_mode(model), torch.no_grad():
            device = _device_of(model)
            xb, yb = x.float().to(device), y.to(device)
            checks.check_randomized(model, xb, yb, bs=len(xb), logger=logger)
            checks.check_range_output(model, xb, logger=logger)
        with eval_mode(model):
            checks.check_dynamic(model, xb, False, logger=logger)
    finally:
        logger.removeHandler(capture)
    return [(_code(r.getMessage()), r.getMessage()) for r in capture.records]
