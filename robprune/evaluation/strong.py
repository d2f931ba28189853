"""The strong response of every trial: APGD-CE then APGD-T, worst case per image.

A ranking under PGD alone is what a reviewer rejects first: rules and criteria can differ in
how much gradient masking they cause. The full official AutoAttack is too slow for every trial,
so each trial also runs the two gradient attacks the field relies on (Croce & Hein 2020), with
AutoAttack's settings (100 steps, one restart, targeted DLR towards the most likely wrong
classes), on a fixed stratified subset of the test split. An image counts as robust only if it
survives both: APGD-T runs on the images APGD-CE left correct, as the official code does.

The number is robprune's own APGD (the agreement test keeps it within a point of the official
code), so it is never called AutoAttack: its suite name is `apgd_ce+apgd_t<T>` and its label
says "not the official AutoAttack". The finalists stage still runs the official code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from robprune.attacks import apgd, apgd_targeted, eval_mode
from robprune.config import ResolvedThreat
from robprune.data import TensorSplit, iterate_batches, stratified_split
from robprune.runtime import Runtime

__all__ = [
    "STRONG_STEPS",
    "StrongOutcome",
    "strong_evaluation",
    "strong_indices",
    "strong_label",
    "strong_suite_name",
]

#: Steps per APGD run (AutoAttack's standard version).
STRONG_STEPS = 100
_STRONG_TAG = 0x57A0


def strong_suite_name(targets: int) -> str:
    """The `strong_suite` column: which attacks, how many APGD-T target classes."""
    return f"apgd_ce+apgd_t{targets}"


def strong_label(targets: int, n: int | None = None) -> str:
    """How every table prints the strong response: attacks, targets, not AutoAttack, and (given
    `n`) on how many test images."""
    label = (
        f"APGD-CE + APGD-T ({targets} target{'s' if targets != 1 else ''}), worst case per "
        "image, robprune's APGD "
        "(not the official AutoAttack)"
    )
    return label if n is None else f"{label}, on {n} test images"


def strong_indices(labels: torch.Tensor, images: int) -> np.ndarray:
    """The fixed strong subset: `images` test indices with the split's label proportions
    (seed 0 whatever the trial seed, so every trial of a search sees the same images); the
    whole split when it is not larger."""
    n = len(labels)
    if images >= n:
        return np.arange(n)
    _, picked = stratified_split(
        labels.numpy(), images, np.random.SeedSequence([0, _STRONG_TAG]), keep_one=False
    )
    return np.sort(np.asarray(picked))


@dataclass(kw_only=True)
class StrongOutcome:
    """One strong evaluation: accuracy, per-image results, settings."""

    accuracy: float
    clean_accuracy: float
    n: int
    suite: str
    label: str
    correct: torch.Tensor = field(repr=False)
    """Per image: correct on clean input and after both attacks."""
    ce_correct: torch.Tensor = field(repr=False)
    """Per image: correct after APGD-CE alone (the first stage)."""
    config: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0


def _run_batch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ResolvedThreat,
    targets: int,
    steps: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(clean correct, correct after APGD-CE, correct after both) for one batch."""
    common = {"epsilon": threat.epsilon, "norm": threat.norm, "steps": steps}
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    after_ce = clean.clone()
    idx = clean.nonzero().squeeze(1)
    if idx.numel():
        adv = apgd(model, x[idx], y[idx], loss="ce", generator=generator, **common)
        with torch.no_grad():
            after_ce[idx] = model(adv).argmax(1) == y[idx]
    both = after_ce.clone()
    idx = after_ce.nonzero().squeeze(1)
    if idx.numel() and targets > 0:
        adv = apgd_targeted(
            model, x[idx], y[idx], num_targets=targets, generator=generator, **common
        )
        with torch.no_grad():
            both[idx] = model(adv).argmax(1) == y[idx]
    return clean, after_ce, both


def strong_evaluation(
    model: nn.Module,
    split: TensorSplit,
    *,
    threat: ResolvedThreat,
    targets: int,
    batch_size: int,
    device: torch.device,
    seed: int = 0,
    steps: int = STRONG_STEPS,
    runtime: Runtime | None = None,
) -> StrongOutcome:
    """APGD-CE on every image the model gets right, then APGD-T (`targets` most likely wrong
    classes) on the images APGD-CE left correct; `split` is the strong subset already."""
    if len(split) == 0:
        raise ValueError("strong evaluation asked of an empty split")
    start = time.perf_counter()
    runtime = runtime if runtime is not None else Runtime(device=torch.device(device))
    generator = torch.Generator().manual_seed(seed)
    parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    with eval_mode(model):
        for x, y in iterate_batches(
            split, batch_size=batch_size, shuffle=False, augment=False, generator=None,
            device=device,
        ):  # fmt: skip
            with runtime.autocast():
                parts.append(
                    _run_batch(model, runtime.format(x), y, threat, targets, steps, generator)
                )
    clean, ce, both = (torch.cat([p[i] for p in parts]).cpu() for i in range(3))
    n = len(both)
    suite = strong_suite_name(targets)
    config = {
        "name": suite,
        "attacks": ["apgd_ce", f"apgd_t ({targets} targets)"],
        "implementation": "robprune.attacks.apgd (not the official AutoAttack)",
        "norm": threat.norm,
        "epsilon": threat.epsilon,
        "steps": steps,
        "restarts": 1,
        "targets": targets,
        "images": n,
        "subset": "a stratified draw of the test split, seed 0 (all of it when smaller)",
        "seed": seed,
        "counting": "worst case per image: robust only if correct after every attack",
    }
    return StrongOutcome(
        accuracy=int(both.sum()) / n,
        clean_accuracy=int(clean.sum()) / n,
        n=n,
        suite=suite,
        label=strong_label(targets, n),
        correct=both,
        ce_correct=ce,
        config=config,
        wall_s=time.perf_counter() - start,
    )
