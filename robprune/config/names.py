"""The names robprune's registries accept, torch-free: the one list that both the registries
(criteria, ratio rules, MRS estimators, training objectives, schedules, models, data sets,
attacks, norms) and the config validator read.

The validator must run before torch is imported (a search checks its spec before Ray starts),
so it cannot read the registries' keys; instead each registry checks at import that its
implementations are exactly the names listed here (`check_registry`). Adding a criterion,
model, ratio rule or data set is its implementation plus one entry here.

Attack names are a grammar, not a list: `fgsm`, `pgd{K}`, `pgd{K}_l2`, `cw{K}`,
`apgd_ce[{K}]`, `apgd_t[{K}]`, with K a positive number of steps (APGD: 100 steps unless K is
given); `parse_attack_name` is the rule `robprune.attacks.build_attack` builds from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ARCHS",
    "ATTACKS",
    "APGD_STEPS",
    "AUTOATTACK_MODES",
    "AttackName",
    "BAND_RULES",
    "BAND_SCALES",
    "CRITERIA",
    "DATASETS",
    "FINETUNE_METHODS",
    "MRS_ESTIMATORS",
    "MRS_RATIO_RULES",
    "NORMS",
    "RATIO_RULES",
    "RatioRuleFacts",
    "SCHEDULES",
    "TEMPERATURE_RULES",
    "TRAINING_METHODS",
    "ATTACK_BN",
    "ATTACK_BN_REFERENCE",
    "BUDGETS",
    "PER_LAYER_LAMP",
    "VAL_SOURCES",
    "check_registry",
    "parse_attack_name",
    "rules_reading",
]

#: Channel importance criteria (robprune.pruning.criteria).
CRITERIA = ("random", "l1", "l2", "taylor", "fpgm", "lamp", "lamp_layer", "bn_scale", "hessian")
#: MRS estimators (robprune.pruning.mrs).
MRS_ESTIMATORS = ("first_order", "ascent", "prune_damage")
#: Training objectives (robprune.training.losses); fine-tuning may also be `none`.
TRAINING_METHODS = ("ce", "pgd_at", "trades", "mart", "fgsm_rs")
FINETUNE_METHODS = ("none", *TRAINING_METHODS)
#: What `prune.sparsity` is a fraction of (robprune.pruning.groups).
BUDGETS = ("params", "macs")
#: The model's mode while adversarial training generates its examples (robprune.training).
ATTACK_BN = ("train", "eval")
#: Each adversarial method's reference code: Madry/Rice (PGD-AT) and Wong et al. (fast AT)
#: keep train mode; the TRADES and MART code switch to eval mode to generate.
ATTACK_BN_REFERENCE = {"pgd_at": "train", "fgsm_rs": "train", "trades": "eval", "mart": "eval"}
#: Where the validation split (the search objective) is carved from (robprune.data.registry).
VAL_SOURCES = ("train", "test")
#: Why `lamp` is refused under per-layer ratio rules (the config error and the pruner's).
PER_LAYER_LAMP = (
    "lamp ranks the channels of one group exactly as l2 does (its normalisation is monotone "
    "inside a group), so under a per-layer ratio rule it is l2 under another name; use "
    "prune.ratio: global (LAMP's intended use) or criterion l2"
)
#: Learning-rate schedules (robprune.training.schedules).
SCHEDULES = ("constant", "step", "cosine", "onecycle")
#: How `mrs_band` normalises MRS to [0, 1] (robprune.pruning.allocation).
BAND_SCALES = ("minmax", "rank")
#: Threat-model norms (robprune.attacks.core).
NORMS = ("linf", "l2")
#: eval.autoattack: the official AutoAttack's versions robprune runs, or when (none/finalists).
AUTOATTACK_MODES = ("none", "standard", "rand", "finalists")
#: Data sets (robprune.data.registry).
DATASETS = ("digits", "synthetic", "cifar10", "cifar100", "svhn", "tinyimagenet")
#: Architectures (robprune.models.MODELS, registered by `@register_model`), sorted.
ARCHS = (
    "digits_cnn",
    "mobilenetv2",
    "mobilevit_xxs",
    "resnet18",
    "resnet34",
    "resnet50",
    "small_cnn",
    "vgg11_bn",
    "vgg16_bn",
    "vgg_small",
    "wrn28",
    "wrn28_10",
    "wrn28_4",
)


@dataclass(frozen=True, kw_only=True)
class RatioRuleFacts:
    """What the config and the factor table need to know of a ratio rule (its formula lives in
    robprune.pruning.allocation)."""

    uses_mrs: bool
    """Whether the rule reads MRS scores (then `prune.mrs.*` applies)."""
    parameters: tuple[str, ...] = ()
    """Fields of `AllocationParams` (`prune.mrs.<field>`) the rule reads."""
    summary: str = ""
    """The formula in one line."""
    uses_scores: bool = False
    """Whether the rule ranks the criterion's channel scores across groups (`global`)."""


#: Ratio rules (robprune.pruning.allocation; formulas: docs/mrs.md).
RATIO_RULES: dict[str, RatioRuleFacts] = {
    "uniform": RatioRuleFacts(uses_mrs=False, summary="r_l = c"),
    "mrs": RatioRuleFacts(
        uses_mrs=True,
        parameters=("temperature",),
        summary="r_l = c * (MRS_l / mean MRS)^(-1/T): scale-aware",
    ),
    "mrs_band": RatioRuleFacts(
        uses_mrs=True,
        parameters=("band", "band_scale"),
        summary="r_l = c + lambda * (1 - 2 * normalised MRS_l): bounded band (OWL-style)",
    ),
    "mrs_zscore": RatioRuleFacts(
        uses_mrs=True,
        parameters=("temperature",),
        summary="r_l = c * L * softmax(-z_l / T): the first, scale-free reading",
    ),
    "global": RatioRuleFacts(
        uses_mrs=False,
        uses_scores=True,
        summary="one threshold over every group's normalised channel scores (global ranking)",
    ),
}


def rules_reading(parameter: str) -> tuple[str, ...]:
    """The ratio rules that read `prune.mrs.<parameter>`."""
    return tuple(name for name, rule in RATIO_RULES.items() if parameter in rule.parameters)


#: Ratio rules that read MRS scores: `prune.mrs.*` applies only to these.
MRS_RATIO_RULES = tuple(name for name, rule in RATIO_RULES.items() if rule.uses_mrs)
#: Rules that read `prune.mrs.temperature` / `prune.mrs.band*`.
TEMPERATURE_RULES = rules_reading("temperature")
BAND_RULES = rules_reading("band")


def check_registry(kind: str, names: Iterable[str], registered: Iterable[str]) -> None:
    """Fail at import when a registry's implementations and its listed names differ."""
    listed, found = set(names), set(registered)
    if listed != found:
        raise RuntimeError(
            f"{kind} registry and robprune.config.names disagree: "
            f"listed but not implemented: {sorted(listed - found)}; "
            f"implemented but not listed: {sorted(found - listed)}"
        )


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

APGD_STEPS = 100
"""Steps of `apgd_ce` / `apgd_t` when the name gives none."""

_NAME = re.compile(
    r"^(?:(?P<fgsm>fgsm)|pgd(?P<pgd>[1-9]\d*)(?P<l2>_l2)?|cw(?P<cw>[1-9]\d*)"
    r"|apgd_(?P<apgd>ce|t)(?P<apgd_steps>[1-9]\d*)?)$"
)


@dataclass(frozen=True, kw_only=True)
class AttackName:
    """What a name says: which attack family, its steps, its loss, and whether it forces L2."""

    name: str
    kind: str
    """fgsm | pgd | apgd | apgd_t."""
    steps: int
    loss: str
    """ce | cw | dlr_targeted."""
    l2: bool = False


def parse_attack_name(name: object) -> AttackName:
    """An attack name (fgsm, pgdK, pgdK_l2, cwK, apgd_ce[K], apgd_t[K]); ValueError if not."""
    match = _NAME.match(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(
            f"unknown attack {name!r}; allowed: {', '.join(ATTACKS)} "
            "with K a positive number of steps"
        )
    g = match.groupdict()
    if g["fgsm"]:
        return AttackName(name=name, kind="fgsm", steps=1, loss="ce")
    if g["pgd"]:
        return AttackName(name=name, kind="pgd", steps=int(g["pgd"]), loss="ce", l2=bool(g["l2"]))
    if g["cw"]:
        return AttackName(name=name, kind="pgd", steps=int(g["cw"]), loss="cw")
    steps = int(g["apgd_steps"]) if g["apgd_steps"] else APGD_STEPS
    if g["apgd"] == "ce":
        return AttackName(name=name, kind="apgd", steps=steps, loss="ce")
    return AttackName(name=name, kind="apgd_t", steps=steps, loss="dlr_targeted")
