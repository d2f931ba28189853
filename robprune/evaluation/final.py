"""The final evaluation of one model on the test split: our attack suite, the official
AutoAttack, and the gradient-masking checks, as one record.

A trial's last step and the finalists stage both call `final_evaluation`, so a number means the
same wherever it appears. Every robust accuracy names its attack; `autoattack_acc` comes only
from the official code and is shown with its label ("AutoAttack (standard, official)").
`deep_checks` (finalists) adds the checks that cost extra attacks: Square alone against PGD on a
subset, and an epsilon sweep up to an unbounded budget on the same subset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robprune.attacks import build_attack, robust_accuracy
from robprune.attacks.autoattack import LABELS, run_autoattack, run_official_attacks
from robprune.data import TensorSplit, to_float
from robprune.evaluation.accuracy import evaluate
from robprune.evaluation.masking import (
    MaskingFlag,
    flags_to_dicts,
    official_flags,
    square_flags,
    sweep_flags,
)

__all__ = ["FinalEvaluation", "final_evaluation", "full_suite", "CHECK_EXAMPLES", "SWEEP"]

#: Examples of the (costly) Square-vs-PGD check and of the epsilon sweep (fewer when
#: eval.autoattack_n is smaller: the same first examples AutoAttack sees).
CHECK_EXAMPLES = 200
#: Multiples of epsilon in the sweep; an unbounded budget follows the last.
SWEEP = (1.0, 2.0, 4.0)


@dataclass(kw_only=True)
class FinalEvaluation:
    metrics: dict[str, Any]
    """clean_acc, robust_acc (+ robust_attack), fgsm/pgd/cw/apgd_acc, autoattack_acc (+ label),
    attacks (every attack's accuracy by name), test_size; deep checks add square_acc and
    eps_sweep."""
    flags: list[MaskingFlag] = field(default_factory=list)
    attack_config: dict[str, Any] = field(default_factory=dict)
    """Every attack that produced a number, with its settings."""

    @property
    def warnings(self) -> list[str]:
        return [str(f) for f in self.flags]


def full_suite(attacks: list[str] | tuple[str, ...], eval_steps: int) -> list[str]:
    """The trial's attacks plus FGSM, PGD-K, CW-K, APGD-CE and APGD-T (K: threat.eval_steps)."""
    names = list(attacks)
    for name in ("fgsm", f"pgd{eval_steps}", f"cw{eval_steps}", "apgd_ce", "apgd_t"):
        if name not in names:
            names.append(name)
    return names


def _first(accs: dict[str, float], prefix: str) -> float | None:
    for name, acc in accs.items():
        if name.startswith(prefix) and not name.endswith("_l2"):
            return acc
    return None


def _unbounded(norm: str, shape: tuple[int, ...]) -> float:
    """A budget that reaches every image in [0, 1]^d from any other."""
    return 1.0 if norm == "linf" else math.sqrt(math.prod(shape))


def _deep_checks(
    model: nn.Module,
    test: TensorSplit,
    *,
    epsilon: float,
    norm: str,
    steps: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    limit: int | None,
) -> tuple[dict[str, Any], list[MaskingFlag], dict[str, Any]]:
    n = min(CHECK_EXAMPLES, len(test), limit or len(test))
    x, y = to_float(test.x[:n]), test.y[:n]
    pgd_name = f"pgd{steps}"

    def pgd_acc(eps: float) -> float:
        attack = build_attack(pgd_name, epsilon=eps, norm=norm)
        gen = torch.Generator().manual_seed(seed)
        return robust_accuracy(
            model, x, y, attack, batch_size=batch_size, device=device, generator=gen
        )

    square = run_official_attacks(
        model,
        x.to(device),
        y.to(device),
        attacks=["square"],
        norm=norm,
        epsilon=epsilon,
        batch_size=batch_size,
        seed=seed,
    )
    sweep = [{"epsilon": epsilon * f, "accuracy": pgd_acc(epsilon * f)} for f in SWEEP]
    top = _unbounded(norm, tuple(x.shape[1:]))
    sweep.append({"epsilon": top, "accuracy": pgd_acc(top), "unbounded": True})
    pgd_at_eps = sweep[0]["accuracy"]
    flags = square_flags(square.accuracy, pgd_at_eps, pgd_name, n)
    flags += official_flags(square.checks)
    flags += sweep_flags(sweep)
    metrics = {
        "square_acc": square.accuracy,
        "check_examples": n,
        "check_pgd_acc": pgd_at_eps,
        "eps_sweep": sweep,
    }
    config = {
        "square": {**square.config, "examples": n},
        "eps_sweep": {"attack": pgd_name, "norm": norm, "examples": n, "seed": seed},
    }
    return metrics, flags, config


def final_evaluation(
    model: nn.Module,
    test: TensorSplit,
    *,
    attacks: list[str],
    primary: str,
    epsilon: float,
    step_size: float | None,
    norm: str,
    batch_size: int,
    device: torch.device,
    runtime: Any = None,
    pgd_column: str | None = None,
    autoattack: str = "none",
    autoattack_n: int | None = None,
    seed: int = 0,
    deep_checks: bool = False,
    eval_steps: int = 20,
    state_dir: str | Path | None = None,
    log: Any = None,
) -> FinalEvaluation:
    """Clean + `attacks` on `test`; the official AutoAttack when `autoattack` is a version
    (standard | rand; `none` or `finalists` skip it) on the first `autoattack_n` examples.

    `pgd_column` names the attack of the `pgd_acc` column (it must be in `attacks`); by default
    the first PGD in `attacks`. `step_size` (None: each attack's default) reaches every attack.
    `runtime` (robprune.runtime.Runtime) applies to our attacks; AutoAttack runs in fp32.
    """
    log = log or (lambda message: None)
    ev = evaluate(
        model,
        test,
        list(attacks),
        epsilon=epsilon,
        step_size=step_size,
        norm=norm,
        batch_size=batch_size,
        device=device,
        runtime=runtime,
    )
    accs = {name: out.accuracy for name, out in ev.attacks.items()}
    apgd = [ev.attacks[n].correct for n in attacks if n.startswith("apgd")]
    metrics: dict[str, Any] = {
        "clean_acc": ev.clean_acc,
        "robust_acc": accs[primary],
        "robust_attack": primary,
        "fgsm_acc": _first(accs, "fgsm"),
        "pgd_acc": accs[pgd_column] if pgd_column else _first(accs, "pgd"),
        "cw_acc": _first(accs, "cw"),
        # worst case over our APGD-CE and APGD-T per example; never called AutoAttack
        "apgd_acc": int(torch.stack(apgd).all(0).sum()) / len(test) if apgd else None,
        "autoattack_acc": None,
        "attacks": accs,
        "test_size": len(test),
    }
    flags = list(ev.flags)
    attack_config = {name: out.config for name, out in ev.attacks.items()}
    if autoattack in LABELS:
        n = len(test) if autoattack_n is None else min(autoattack_n, len(test))
        log(f"{LABELS[autoattack]} on {n} test examples")
        state = Path(state_dir) / f"autoattack-{autoattack}.json" if state_dir else None
        out = run_autoattack(
            model,
            to_float(test.x[:n]).to(device),
            test.y[:n].to(device),
            version=autoattack,
            norm=norm,
            epsilon=epsilon,
            batch_size=batch_size,
            seed=seed,
            state_path=state,
        )
        metrics.update(
            autoattack_acc=out.accuracy,
            autoattack_label=out.label,
            autoattack_version=autoattack,
            autoattack_n=n,
            autoattack_stages=out.stages,
            autoattack_wall_s=out.wall_s,
        )
        attack_config["autoattack"] = out.config
        flags += official_flags(out.checks)
    if deep_checks:
        log("masking checks: Square vs PGD and an epsilon sweep on a subset")
        extra, more, config = _deep_checks(
            model,
            test,
            epsilon=epsilon,
            norm=norm,
            steps=eval_steps,
            batch_size=batch_size,
            device=device,
            seed=seed,
            limit=autoattack_n,
        )
        metrics.update(extra)
        flags += more
        attack_config.update(config)
    metrics["masking_flags"] = flags_to_dicts(flags)
    return FinalEvaluation(metrics=metrics, flags=flags, attack_config=attack_config)
