"""The final evaluation of one model on the test split: our attack suite, the official
AutoAttack, and the gradient-masking checks, as one record.

A trial's last step and the finalists stage both call `final_evaluation`, so a number means the
same wherever it appears. Every robust accuracy names its attack; `autoattack_acc` comes only
from the official code and is shown with its label ("AutoAttack (standard, official)").
`deep_checks` (finalists) adds the checks that cost extra attacks: Square alone against PGD on a
subset, and an epsilon sweep up to an unbounded budget on the same subset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robprune.attacks.autoattack import LABELS, run_official_attacks
from robprune.config import ResolvedThreat
from robprune.data import TensorSplit, to_float
from robprune.evaluation.accuracy import evaluate
from robprune.evaluation.curves import CURVE_FACTORS, security_curve
from robprune.evaluation.masking import (
    GAP_THRESHOLD,
    MaskingFlag,
    flags_to_dicts,
    gap_flags,
    official_flags,
    square_flags,
    sweep_flags,
)

__all__ = [
    "FinalEvaluation",
    "FinalSuite",
    "final_evaluation",
    "full_suite",
    "CHECK_EXAMPLES",
    "SWEEP",
]

#: Examples of the (costly) Square-vs-PGD check and of the security curve (fewer when
#: eval.autoattack_n is smaller: the same first examples AutoAttack sees).
CHECK_EXAMPLES = 200
#: Multiples of epsilon on the security curve; an unbounded budget follows the last.
SWEEP = CURVE_FACTORS
#: What the gap check compares the primary attack with when AutoAttack did not run.
APGD_REFERENCE = "our APGD (worst of APGD-CE and APGD-T)"


@dataclass(kw_only=True)
class FinalEvaluation:
    metrics: dict[str, Any]
    """clean_acc, robust_acc (+ robust_attack), fgsm/pgd/cw/apgd_acc, autoattack_acc (+ label),
    attacks (every attack's accuracy by name), test_size; deep checks add square_acc and
    eps_sweep."""
    flags: list[MaskingFlag] = field(default_factory=list)
    attack_config: dict[str, Any] = field(default_factory=dict)
    """Every attack that produced a number, with its settings."""
    correct: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    """Per-example correctness (clean, primary) for accuracies on AutoAttack's subset."""

    @property
    def warnings(self) -> list[str]:
        return [str(f) for f in self.flags]

    def add(self, more: FinalEvaluation) -> None:
        """Merge another part's metrics, flags and attack configs into this one."""
        self.metrics.update(more.metrics)
        self.flags += more.flags
        self.attack_config.update(more.attack_config)


def full_suite(attacks: list[str] | tuple[str, ...], eval_steps: int) -> list[str]:
    """The trial's attacks plus FGSM, PGD-K, CW-K, APGD-CE and APGD-T (K: threat.eval_steps)."""
    names = list(attacks)
    for name in ("fgsm", f"pgd{eval_steps}", f"cw{eval_steps}", "apgd_ce", "apgd_t"):
        if name not in names:
            names.append(name)
    return names


def _first_name(accs: dict[str, float], prefix: str) -> str | None:
    """The first attack named `prefix...` in the threat norm: the one its column reports."""
    return next((n for n in accs if n.startswith(prefix) and not n.endswith("_l2")), None)


def _first(accs: dict[str, float], prefix: str) -> float | None:
    name = _first_name(accs, prefix)
    return None if name is None else accs[name]


def _gap(primary: str, primary_acc: float, reference: str, ref_acc: float, scope: str) -> dict:
    """The primary attack's accuracy minus a stronger reference's, on the same examples."""
    return {
        "primary": primary,
        "primary_acc": primary_acc,
        "reference": reference,
        "reference_acc": ref_acc,
        "gap": primary_acc - ref_acc,
        "threshold": GAP_THRESHOLD,
        "scope": scope,
    }


@dataclass(frozen=True, kw_only=True)
class FinalSuite:
    """What a final evaluation runs: our attacks, the official AutoAttack and the deep checks,
    at one threat model (a trial's last step and the finalists stage each build one)."""

    attacks: tuple[str, ...]
    """Our attacks, by name (`robprune.config.names`)."""
    primary: str
    """The attack whose accuracy is `robust_acc`; one of `attacks`."""
    threat: ResolvedThreat
    """Radius, norm and PGD/CW step of every attack (step None: each attack's default);
    `eval_steps` is the PGD of the deep checks' sweep."""
    batch_size: int
    """Evaluation batch size."""
    pgd_column: str | None = None
    """The attack of the `pgd_acc` column (one of `attacks`); None: the first PGD listed."""
    autoattack: str = "none"
    """The official AutoAttack: standard | rand run it; none | finalists skip it."""
    autoattack_n: int | None = None
    """AutoAttack (and the deep checks) on the first N test examples; None: all."""
    seed: int = 0
    """Seed of every random start."""
    deep_checks: bool = False
    """Also Square alone against PGD and an epsilon sweep, on a subset (finalists)."""


def _deep_checks(
    model: nn.Module, test: TensorSplit, suite: FinalSuite, device: torch.device
) -> tuple[dict[str, Any], list[MaskingFlag], dict[str, Any]]:
    threat = suite.threat
    n = min(CHECK_EXAMPLES, len(test), suite.autoattack_n or len(test))
    x, y = to_float(test.x[:n]), test.y[:n]
    pgd_name = f"pgd{threat.eval_steps}"
    square = run_official_attacks(
        model,
        x.to(device),
        y.to(device),
        attacks=["square"],
        norm=threat.norm,
        epsilon=threat.epsilon,
        batch_size=suite.batch_size,
        seed=suite.seed,
    )
    sweep = security_curve(
        model,
        x,
        y,
        epsilon=threat.epsilon,
        norm=threat.norm,
        steps=threat.eval_steps,
        batch_size=suite.batch_size,
        device=device,
        seed=suite.seed,
    )
    pgd_at_eps = next(row["accuracy"] for row in sweep if row["factor"] == 1.0)
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
        "eps_sweep": {
            "attack": pgd_name,
            "norm": threat.norm,
            "examples": n,
            "scope": f"the first {n} test images",
            "factors": list(SWEEP),
            "seed": suite.seed,
        },
    }
    return metrics, flags, config


def _our_attacks(
    model: nn.Module,
    test: TensorSplit,
    suite: FinalSuite,
    device: torch.device,
    runtime: Any,
) -> FinalEvaluation:
    """Clean + the suite's attacks: the metric columns, their flags and attack configs."""
    ev = evaluate(
        model,
        test,
        list(suite.attacks),
        threat=suite.threat,
        batch_size=suite.batch_size,
        device=device,
        runtime=runtime,
    )
    accs = {name: out.accuracy for name, out in ev.attacks.items()}
    apgd = [ev.attacks[n].correct for n in suite.attacks if n.startswith("apgd")]
    pgd_column = suite.pgd_column
    metrics: dict[str, Any] = {
        "clean_acc": ev.clean_acc,
        "robust_acc": accs[suite.primary],
        "robust_attack": suite.primary,
        "fgsm_acc": _first(accs, "fgsm"),
        "pgd_acc": accs[pgd_column] if pgd_column else _first(accs, "pgd"),
        "pgd_attack": pgd_column or _first_name(accs, "pgd"),
        "cw_acc": _first(accs, "cw"),
        "cw_attack": _first_name(accs, "cw"),
        # worst case over our APGD-CE and APGD-T per example; never called AutoAttack
        "apgd_acc": int(torch.stack(apgd).all(0).sum()) / len(test) if apgd else None,
        "autoattack_acc": None,
        "attacks": accs,
        "test_size": len(test),
    }
    attack_config = {name: out.config for name, out in ev.attacks.items()}
    correct = {"clean": ev.clean_correct, "primary": ev.attacks[suite.primary].correct}
    return FinalEvaluation(
        metrics=metrics, flags=list(ev.flags), attack_config=attack_config, correct=correct
    )


def _official_autoattack(
    model: nn.Module,
    test: TensorSplit,
    suite: FinalSuite,
    device: torch.device,
    state_dir: str | Path | None,
) -> FinalEvaluation:
    """The official AutoAttack (`suite.autoattack`) on the first `autoattack_n` examples."""
    version = suite.autoattack
    n = len(test) if suite.autoattack_n is None else min(suite.autoattack_n, len(test))
    state = Path(state_dir) / f"autoattack-{version}.json" if state_dir else None
    out = run_official_attacks(
        model,
        to_float(test.x[:n]).to(device),
        test.y[:n].to(device),
        version=version,
        norm=suite.threat.norm,
        epsilon=suite.threat.epsilon,
        batch_size=suite.batch_size,
        seed=suite.seed,
        state_path=state,
    )
    scope = f"on the first {n} test images" if n < len(test) else f"on all {n} test images"
    metrics = {
        "autoattack_acc": out.accuracy,
        "autoattack_label": out.label,
        "autoattack_version": version,
        "autoattack_n": n,
        "autoattack_scope": scope,
        "autoattack_stages": out.stages,
        "autoattack_wall_s": out.wall_s,
    }
    flags = official_flags(out.checks)
    config = {"autoattack": {**out.config, "examples": n, "scope": scope}}
    return FinalEvaluation(metrics=metrics, flags=flags, attack_config=config)


def _gap_check(result: FinalEvaluation, suite: FinalSuite) -> None:
    """Record the primary attack's lead over AutoAttack (on its images) or our APGD, and flag
    it above GAP_THRESHOLD; fills AutoAttack's subset clean and primary accuracy."""
    m, primary = result.metrics, suite.primary
    if m.get("autoattack_acc") is not None:
        n = m["autoattack_n"]
        sub = result.correct["primary"][:n].float().mean().item()
        m["autoattack_clean_acc"] = result.correct["clean"][:n].float().mean().item()
        m["autoattack_primary_acc"] = sub
        label = m["autoattack_label"]
        m["attack_gap"] = _gap(primary, sub, label, m["autoattack_acc"], m["autoattack_scope"])
    elif m.get("apgd_acc") is not None and not primary.startswith("apgd"):
        scope = "on the test split"
        m["attack_gap"] = _gap(primary, m["robust_acc"], APGD_REFERENCE, m["apgd_acc"], scope)
    if m.get("attack_gap"):
        result.flags += gap_flags(m["attack_gap"])


def final_evaluation(
    model: nn.Module,
    test: TensorSplit,
    suite: FinalSuite,
    *,
    device: torch.device,
    runtime: Any = None,
    state_dir: str | Path | None = None,
    log: Any = None,
) -> FinalEvaluation:
    """Clean + `suite.attacks` on `test`; the official AutoAttack when `suite.autoattack` is a
    version (standard | rand); the deep checks when asked.

    `runtime` (robprune.runtime.Runtime) applies to our attacks; AutoAttack runs in fp32.
    `state_dir` keeps AutoAttack's progress, so an interrupted run continues where it stopped.
    """
    log = log or (lambda message: None)
    result = _our_attacks(model, test, suite, device, runtime)
    if suite.autoattack in LABELS:
        n = len(test) if suite.autoattack_n is None else min(suite.autoattack_n, len(test))
        log(f"{LABELS[suite.autoattack]} on {n} test examples")
        result.add(_official_autoattack(model, test, suite, device, state_dir))
    _gap_check(result, suite)
    if suite.deep_checks:
        log("masking checks: Square vs PGD and the security curve on a subset")
        metrics, flags, config = _deep_checks(model, test, suite, device)
        result.add(FinalEvaluation(metrics=metrics, flags=flags, attack_config=config))
    result.metrics["masking_flags"] = flags_to_dicts(result.flags)
    return result
