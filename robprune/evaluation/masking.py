"""Gradient-masking checks: red flags that a robust-accuracy number overstates robustness.

Sources: Athalye et al. 2018, Carlini et al. 2019 ("On evaluating adversarial robustness"),
and the checks that ship with the official AutoAttack (`pyautoattack.checks`). Each flag has a
code, what was measured (`detail`) and one sentence of what it means (`FLAG_MEANINGS`), so
results and reports can say why a number should not be trusted. A flag is a warning, never a
failure: the numbers are still recorded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from robprune.formatting import fraction

__all__ = [
    "FLAG_MEANINGS",
    "MaskingFlag",
    "basic_flags",
    "official_flags",
    "square_flags",
    "sweep_flags",
    "flags_to_dicts",
    "gap_flags",
    "GAP_THRESHOLD",
    "GAP_ALPHA",
    "mcnemar_p",
]

FLAG_MEANINGS: dict[str, str] = {
    "robust_above_clean": (
        "An attack left more examples correct than no attack at all, so it did not follow "
        "the loss: the gradients it used are not informative."
    ),
    "flat_loss": (
        "The loss barely rose under attack, which happens when gradients are masked rather "
        "than when the model is robust."
    ),
    "pgd_weaker_than_fgsm": (
        "A multi-step attack did worse than a single FGSM step; iterating can only help an "
        "attack whose gradients point the right way."
    ),
    "aa_randomized": (
        "AutoAttack's check: the model's outputs change between identical forward passes, so "
        "it is a randomised defence and needs the `rand` version (expectation over "
        "transformations)."
    ),
    "aa_softmax_output": (
        "AutoAttack's check: the model outputs probabilities instead of logits, which "
        "saturates the cross-entropy and flattens its gradient."
    ),
    "aa_zero_gradients": (
        "AutoAttack's check: some inputs have exactly zero input gradient, so gradient-based "
        "attacks cannot move them and their robustness is unproven."
    ),
    "aa_dynamic": (
        "AutoAttack's check: the forward pass itself computes gradients (a test-time or "
        "dynamic defence), which a static attack may not evaluate correctly."
    ),
    "aa_square_after_gradient": (
        "AutoAttack's check: the gradient-free Square attack still broke examples that every "
        "gradient attack left correct, so those gradients were unreliable."
    ),
    "aa_n_classes": (
        "AutoAttack's check: the model has too few classes for the targeted attacks' "
        "settings, so part of the standard version could not run as designed."
    ),
    "aa_other": "AutoAttack logged a warning that robprune does not classify; read its text.",
    "square_beats_pgd": (
        "The gradient-free Square attack lowered accuracy more than PGD; with honest "
        "gradients a white-box attack should be at least as strong as a black-box one."
    ),
    "eps_sweep_not_zero": (
        "Accuracy did not fall to zero at an unbounded budget, where any image is reachable: "
        "the attack is blocked by the model's gradients, not by robustness."
    ),
    "eps_sweep_not_monotone": (
        "Accuracy rose when the budget grew; a larger budget can only help a working attack."
    ),
    "primary_attack_gap": (
        "The attack the search selects on (the primary attack) leaves clearly more examples "
        "correct than a stronger attack on the same images, so it overstates robustness and a "
        "search that ranks by it can select for gradient masking (rank by the stronger attack)."
    ),
}

#: Square must beat PGD by more than this (a fraction of the examples) to be flagged.
SQUARE_MARGIN = 0.005
#: Accuracy left at the unbounded budget above which the sweep is flagged.
SWEEP_ZERO = 0.01
#: A rise of accuracy between consecutive budgets larger than this is flagged.
SWEEP_RISE = 0.01
#: The primary attack's accuracy above a stronger attack's on the same images by more than
#: this (3 points: the size of gap a ranking can turn on) is flagged, when it is also real for
#: the number of images (GAP_ALPHA).
GAP_THRESHOLD = 0.03
#: ... and when the exact one-sided McNemar test on the discordant images (those only one of
#: the two attacks broke) rejects "both attacks equally strong" at this level: 2 of 50 images
#: (4 points) is not a flag, 20 of 500 is.
GAP_ALPHA = 0.01


def mcnemar_p(only_reference: int, only_primary: int) -> float:
    """P(X >= only_reference) for X ~ Binomial(discordant, 1/2): the exact one-sided McNemar
    test that the reference attack breaks more images than the primary one, not by chance."""
    n = only_reference + only_primary
    if n == 0 or only_reference == 0:
        return 1.0
    log_half = n * math.log(0.5)
    terms = [
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half
        for k in range(only_reference, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


@dataclass(frozen=True, kw_only=True)
class MaskingFlag:
    """One red flag: its code, what was measured, and (from FLAG_MEANINGS) what it means."""

    code: str
    detail: str

    def __post_init__(self) -> None:
        if self.code not in FLAG_MEANINGS:
            raise ValueError(f"unknown masking flag {self.code!r}")

    @property
    def meaning(self) -> str:
        return FLAG_MEANINGS[self.code]

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "detail": self.detail, "meaning": self.meaning}

    def __str__(self) -> str:
        return f"{self.detail} [{self.code}: {self.meaning}]"


def flags_to_dicts(flags: Iterable[MaskingFlag]) -> list[dict[str, str]]:
    return [f.to_dict() for f in flags]


def basic_flags(
    clean_acc: float,
    clean_loss: float,
    attacks: Mapping[str, tuple[float, float]],
) -> list[MaskingFlag]:
    """The classic checks on one evaluation; `attacks` maps name -> (accuracy, mean loss)."""
    flags = []
    for name, (acc, loss) in attacks.items():
        if acc > clean_acc + 1e-9:
            flags.append(
                MaskingFlag(
                    code="robust_above_clean",
                    detail=f"robust accuracy under {name} ({fraction(acc)}) exceeds clean "
                    f"accuracy ({fraction(clean_acc)})",
                )
            )
        if loss - clean_loss < 1e-3 and clean_acc > 0:
            flags.append(
                MaskingFlag(
                    code="flat_loss",
                    detail=f"suspiciously flat loss: it barely rises under {name} (clean "
                    f"{clean_loss:.4f} -> "
                    f"{loss:.4f})",
                )
            )
    fgsm = attacks.get("fgsm")
    for name, (acc, _) in attacks.items():
        # an L2 PGD has its own radius: no comparison with the L-inf FGSM
        l2 = name.endswith("_l2")
        if fgsm is not None and name.startswith("pgd") and not l2 and acc > fgsm[0] + 0.01:
            flags.append(
                MaskingFlag(
                    code="pgd_weaker_than_fgsm",
                    detail=f"{name} accuracy ({fraction(acc)}) exceeds FGSM accuracy "
                    f"({fraction(fgsm[0])})",
                )
            )
    return flags


def official_flags(checks: Iterable[tuple[str, str]]) -> list[MaskingFlag]:
    """AutoAttack's own checks (code, message), one flag per code."""
    seen: dict[str, str] = {}
    for code, message in checks:
        seen.setdefault(code if code in FLAG_MEANINGS else "aa_other", message)
    return [MaskingFlag(code=c, detail=f"AutoAttack: {m}") for c, m in seen.items()]


def square_flags(square_acc: float, pgd_acc: float, pgd_name: str, n: int) -> list[MaskingFlag]:
    """Square (gradient-free) vs PGD on the same examples."""
    if square_acc < pgd_acc - SQUARE_MARGIN:
        return [
            MaskingFlag(
                code="square_beats_pgd",
                detail=f"Square accuracy ({fraction(square_acc)}) is below {pgd_name} accuracy "
                f"({fraction(pgd_acc)}) on the same {n} examples",
            )
        ]
    return []


def sweep_flags(sweep: Sequence[Mapping[str, Any]]) -> list[MaskingFlag]:
    """Checks on an epsilon sweep: rows {epsilon, accuracy, unbounded}, budgets increasing."""
    flags = []
    for before, after in zip(sweep, sweep[1:], strict=False):
        if after["accuracy"] > before["accuracy"] + SWEEP_RISE:
            flags.append(
                MaskingFlag(
                    code="eps_sweep_not_monotone",
                    detail=f"accuracy rises from {fraction(before['accuracy'])} at eps "
                    f"{before['epsilon']:.4g} to {fraction(after['accuracy'])} at eps "
                    f"{after['epsilon']:.4g}",
                )
            )
    last = sweep[-1] if sweep else None
    if last is not None and last["accuracy"] > SWEEP_ZERO:
        flags.append(
            MaskingFlag(
                code="eps_sweep_not_zero",
                detail=f"accuracy is still {fraction(last['accuracy'])} at eps "
                f"{last['epsilon']:.4g} "
                "(unbounded: every image in the pixel range is reachable)",
            )
        )
    return flags


def gap_flags(gap: Mapping[str, Any]) -> list[MaskingFlag]:
    """The primary-vs-stronger-attack gap ({primary, primary_acc, reference, reference_acc,
    gap, scope, only_reference_broke, only_primary_broke}) flagged when it exceeds
    GAP_THRESHOLD and the paired test (`mcnemar_p`) rejects chance at GAP_ALPHA. A gap
    without discordant counts (an older record) is judged on the threshold alone."""
    if gap["gap"] <= GAP_THRESHOLD:
        return []
    counts = "only_reference_broke" in gap and "only_primary_broke" in gap
    p = mcnemar_p(gap["only_reference_broke"], gap["only_primary_broke"]) if counts else None
    if p is not None and p >= GAP_ALPHA:
        return []
    test = (
        f"; {gap['only_reference_broke']} images broken only by the reference, "
        f"{gap['only_primary_broke']} only by {gap['primary']}, exact McNemar p = {p:.2g}"
        if p is not None
        else ""
    )
    return [
        MaskingFlag(
            code="primary_attack_gap",
            detail=f"{gap['primary']} accuracy {fraction(gap['primary_acc'])} is "
            f"{100 * gap['gap']:.1f} points above {gap['reference']} "
            f"({fraction(gap['reference_acc'])}) {gap['scope']} (threshold "
            f"{100 * GAP_THRESHOLD:.0f} points and p < {GAP_ALPHA}{test})",
        )
    ]
