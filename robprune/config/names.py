"""The grammar of attack names, torch-free, so the config validates `eval.attacks` with the
exact rule the attack registry builds from (`robprune.attacks.build_attack`).

Names: `fgsm`, `pgd{K}`, `pgd{K}_l2`, `cw{K}`, `apgd_ce[{K}]`, `apgd_t[{K}]`, with K a positive
number of steps (APGD: 100 steps unless K is given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ATTACKS", "APGD_STEPS", "AttackName", "parse_attack_name"]

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
