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
from robprune.evaluation.strong import strong_evaluation, strong_indices, strong_label

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
        self.correct.update(more.correct)


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


def _gap(
    primary: str, primary_ok: torch.Tensor, reference: str, ref_ok: torch.Tensor, scope: str
) -> dict:
    """The primary attack's accuracy minus a stronger reference's, on the same images, with
    the discordant counts the flag's paired test reads."""
    primary_ok, ref_ok = primary_ok.bool().cpu(), ref_ok.bool().cpu()
    n = len(ref_ok)
    primary_acc, ref_acc = int(primary_ok.sum()) / n, int(ref_ok.sum()) / n
    return {
        "primary": primary,
        "primary_acc": primary_acc,
        "reference": reference,
        "reference_acc": ref_acc,
        "gap": primary_acc - ref_acc,
        "threshold": GAP_THRESHOLD,
        "scope": scope,
        "images": n,
        "only_reference_broke": int((primary_ok & ~ref_ok).sum()),
        "only_primary_broke": int((~primary_ok & ref_ok).sum()),
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
    strong_images: int = 0
    """Test images of the strong response (`robprune.evaluation.strong`); 0: not run."""
    strong_targets: int = 3
    """APGD-T target classes of the strong response."""


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
    if apgd:
        correct["apgd"] = torch.stack(apgd).all(0)
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
    return FinalEvaluation(
        metrics=metrics, flags=flags, attack_config=config, correct={"autoattack": out.correct}
    )


def _strong(
    model: nn.Module,
    test: TensorSplit,
    suite: FinalSuite,
    device: torch.device,
    runtime: Any,
    primary_correct: torch.Tensor,
) -> FinalEvaluation:
    """The strong response on its fixed stratified subset of `test`."""
    picked = strong_indices(test.y, suite.strong_images)
    out = strong_evaluation(
        model,
        test.subset(picked),
        threat=suite.threat,
        targets=suite.strong_targets,
        batch_size=suite.batch_size,
        device=device,
        seed=suite.seed,
        runtime=runtime,
    )
    metrics = {
        "strong_acc": out.accuracy,
        "strong_suite": out.suite,
        "strong_n": out.n,
        "strong_label": out.label,
        "strong_clean_acc": out.clean_accuracy,
        "strong_apgd_ce_acc": int(out.ce_correct.sum()) / out.n,
        "strong_wall_s": out.wall_s,
    }
    primary_on_subset = primary_correct[torch.as_tensor(picked)]
    metrics["strong_primary_acc"] = int(primary_on_subset.sum()) / out.n
    correct = {"strong": out.correct, "strong_primary": primary_on_subset}
    return FinalEvaluation(metrics=metrics, attack_config={"strong": out.config}, correct=correct)


def _gap_check(result: FinalEvaluation, suite: FinalSuite) -> None:
    """Record the primary attack's lead over AutoAttack (on its images), else the strong
    response (on its images), else our APGD, and flag it when it is both large and real for
    the number of images (`masking.gap_flags`); fills AutoAttack's subset clean and primary
    accuracy."""
    m, primary, correct = result.metrics, suite.primary, result.correct
    if m.get("autoattack_acc") is not None:
        n = m["autoattack_n"]
        m["autoattack_clean_acc"] = correct["clean"][:n].float().mean().item()
        m["autoattack_primary_acc"] = correct["primary"][:n].float().mean().item()
        gap = _gap(primary, correct["primary"][:n], m["autoattack_label"],
                   correct["autoattack"], m["autoattack_scope"])  # fmt: skip
    elif m.get("strong_acc") is not None and not primary.startswith("apgd"):
        picked = correct["strong_primary"]
        scope = f"on the same {m['strong_n']} test images"
        reference = strong_label(suite.strong_targets)
        gap = _gap(primary, picked, reference, correct["strong"], scope)
    elif "apgd" in correct and not primary.startswith("apgd"):
        scope = f"on the same {len(correct['apgd'])} test images"
        gap = _gap(primary, correct["primary"], APGD_REFERENCE, correct["apgd"], scope)
    else:
        return
    m["attack_gap"] = gap
    result.flags += gap_flags(gap)


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
    if suite.strong_images > 0:
        n = min(suite.strong_images, len(test))
        log(f"strong response: APGD-CE + APGD-T ({suite.strong_targets} targets) on {n} images")
        result.add(_strong(model, test, suite, device, runtime, result.correct["primary"]))
    _gap_check(result, suite)
    if suite.deep_checks:
        log("masking checks: Square vs PGD and the security curve on a subset")
        metrics, flags, config = _deep_checks(model, test, suite, device)
        result.add(FinalEvaluation(metrics=metrics, flags=flags, attack_config=config))
    result.metrics["masking_flags"] = flags_to_dicts(result.flags)
    return result
