"""Clean and adversarial accuracy, with sanity flags for gradient masking.

Every robustness number is keyed by the attack that produced it; `robust_acc` is the primary
attack's. The official AutoAttack is not installed: our APGD-CE/APGD-T are labelled APGD.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robprune.attacks import eval_mode, threat_attack
from robprune.config import ResolvedThreat
from robprune.data import TensorSplit, iterate_batches
from robprune.evaluation.masking import MaskingFlag, basic_flags
from robprune.runtime import Runtime

__all__ = [
    "AttackOutcome",
    "Evaluation",
    "evaluate",
    "accuracy_under",
    "sanity_flags",
]


@dataclass(kw_only=True)
class AttackOutcome:
    name: str
    accuracy: float
    loss: float
    """Mean cross-entropy on the attacked inputs (for the flat-loss check)."""
    correct: torch.Tensor = field(repr=False)
    """Per-example correctness, so attacks can be combined into a worst case."""
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class Evaluation:
    clean_acc: float
    attacks: dict[str, AttackOutcome]
    flags: list[MaskingFlag] = field(default_factory=list)
    """Gradient-masking flags of this evaluation (robprune.evaluation.masking)."""
    clean_correct: torch.Tensor | None = field(default=None, repr=False)
    """Per-example clean correctness (accuracies on a subset of the same examples)."""

    @property
    def warnings(self) -> list[str]:
        return [str(f) for f in self.flags]

    def accuracy(self, name: str) -> float:
        return self.attacks[name].accuracy


def accuracy_under(
    model: nn.Module,
    split: TensorSplit,
    attack: Any | None,
    *,
    batch_size: int,
    device: torch.device,
    seed: int = 0,
    runtime: Runtime | None = None,
) -> AttackOutcome:
    """Accuracy of `model` on `split` under `attack` (None: clean), model in eval mode.

    Random starts draw from a generator seeded with `seed`, so a number is reproducible and
    does not depend on what ran before it. An empty split is an error, not an accuracy.
    `runtime` (default: plain fp32) sets autocast and memory format for the attack and the
    final forward. Counts stay on the device until the end: one host sync per call, not per
    batch.
    """
    if len(split) == 0:
        what = attack.name if attack is not None else "clean"
        raise ValueError(f"accuracy ({what}) asked of an empty split: no examples to measure")
    runtime = runtime if runtime is not None else Runtime(device=torch.device(device))
    generator = torch.Generator().manual_seed(seed)
    correct: list[torch.Tensor] = []
    loss_sum = torch.zeros((), device=device)
    with eval_mode(model):
        for x, y in iterate_batches(
            split,
            batch_size=batch_size,
            shuffle=False,
            augment=False,
            generator=None,
            device=device,
        ):
            x = runtime.format(x)
            with runtime.autocast():
                if attack is not None:
                    x = attack(model, x, y, generator=generator)
                with torch.no_grad():
                    logits = model(x).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            correct.append(logits.argmax(1) == y)
    hits = torch.cat(correct).cpu()
    n = len(hits)
    return AttackOutcome(
        name=attack.name if attack is not None else "clean",
        accuracy=float(hits.float().sum()) / n,
        loss=float(loss_sum) / n,
        correct=hits,
        config=attack.config() if attack is not None else {},
    )


def evaluate(
    model: nn.Module,
    split: TensorSplit,
    attack_names: list[str],
    *,
    threat: ResolvedThreat,
    batch_size: int,
    device: torch.device,
    runtime: Runtime | None = None,
) -> Evaluation:
    """Clean accuracy and accuracy under each named attack at `threat`, with masking flags."""
    kw: dict[str, Any] = {"batch_size": batch_size, "device": device, "runtime": runtime}
    clean = accuracy_under(model, split, None, **kw)
    outcomes = {}
    for name in attack_names:
        outcomes[name] = accuracy_under(model, split, threat_attack(name, threat), **kw)
    return Evaluation(
        clean_acc=clean.accuracy,
        clean_correct=clean.correct,
        attacks=outcomes,
        flags=sanity_flags(clean, outcomes),
    )


def sanity_flags(clean: AttackOutcome, attacks: dict[str, AttackOutcome]) -> list[MaskingFlag]:
    """Red flags of gradient masking (Athalye et al. 2018; Carlini et al. 2019)."""
    return basic_flags(
        clean.accuracy, clean.loss, {n: (o.accuracy, o.loss) for n, o in attacks.items()}
    )
