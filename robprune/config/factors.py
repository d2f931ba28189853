"""The design's factors, declared once: column, config key path, label, and when each applies.

Everything else that names factors is derived from `FACTORS` and `CONDITIONS`: the trials
table's factor columns (`results_schema`), the export's factor values, TensorBoard's hparams,
the progress lines, the search spec's conditional parameters, the report's labels, nesting and
Optuna parameter mapping. Torch-free and pyarrow-free: the spec validator and the report use it.

A factor that does not apply to a trial (the MRS temperature under the uniform rule, beta
outside TRADES/MART, the learning rate when nothing is fine-tuned) is null in the table, never a
default, so no number is attributed to a parameter that did nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from robprune.config.names import (
    ATTACK_BN_REFERENCE,
    BAND_RULES,
    FINETUNE_METHODS,
    MRS_RATIO_RULES,
    TEMPERATURE_RULES,
)

__all__ = [
    "CONDITIONS",
    "FACTORS",
    "FACTOR_COLUMNS",
    "FactorSpec",
    "condition_of",
    "factor",
    "factor_for_path",
    "factor_values",
    "label",
]

#: Methods that fine-tune (so the fine-tuning recipe means something).
_TRAINED = tuple(m for m in FINETUNE_METHODS if m != "none")

#: Config keys that exist only when another key has one of some values (docs/architecture.md):
#: key-path prefix -> (governing key path, values where it applies); the first match wins.
CONDITIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "prune.mrs.temperature": ("prune.ratio", TEMPERATURE_RULES),
    "prune.mrs.band": ("prune.ratio", BAND_RULES),  # band and band_scale
    "prune.mrs.": ("prune.ratio", MRS_RATIO_RULES),
    "finetune.trades.": ("finetune.method", ("trades",)),
    "finetune.mart.": ("finetune.method", ("mart",)),
    "dense.beta": ("dense.method", ("trades", "mart")),
}


def condition_of(path: str) -> tuple[str, tuple[str, ...]] | None:
    """(governing key path, values) under which the key `path` exists; None: always."""
    for prefix, rule in CONDITIONS.items():
        if path == prefix or path.startswith(prefix):
            return rule
    return None


@dataclass(frozen=True, kw_only=True)
class FactorSpec:
    """One factor: a trials-table column whose value is read from the trial config.

    `paths` are the key paths that may hold the value (beta lives under the method's own
    section); the first one that applies is used. `when` adds a condition of the factor itself
    beyond `CONDITIONS` (the fine-tuning recipe only matters when something is fine-tuned).
    """

    column: str
    paths: tuple[str, ...]
    label: str
    kind: Literal["string", "float", "int", "bool"]
    when: tuple[str, tuple[str, ...]] | None = None

    def applies_to(self, path: str, lookup: Callable[[str], Any]) -> bool:
        """Whether `path` of this factor exists given other keys' values (`lookup(path)`)."""
        for rule in (condition_of(path), self.when):
            if rule is not None and lookup(rule[0]) not in rule[1]:
                return False
        return True

    def value(self, lookup: Callable[[str], Any]) -> Any:
        """The factor's value for a trial whose config is read by `lookup`; None if n/a."""
        for path in self.paths:
            if self.applies_to(path, lookup):
                return lookup(path)
        return None

    @property
    def parent(self) -> str | None:
        """The factor column this one only exists under (analysis folds it into it)."""
        rules = [condition_of(p) for p in self.paths]
        governing = {rule[0] for rule in rules if rule is not None}
        if len(governing) != 1 or None in rules:
            return None
        owner = factor_for_path(governing.pop())
        return owner.column if owner is not None else None


FACTORS: tuple[FactorSpec, ...] = (
    FactorSpec(column="dataset", paths=("data.dataset",), label="data set", kind="string"),
    FactorSpec(column="arch", paths=("model.arch",), label="architecture", kind="string"),
    FactorSpec(column="criterion", paths=("prune.criterion",), label="criterion", kind="string"),
    FactorSpec(column="ratio_rule", paths=("prune.ratio",), label="ratio rule", kind="string"),
    FactorSpec(
        column="temperature",
        paths=("prune.mrs.temperature",),
        label="MRS temperature",
        kind="float",
    ),
    FactorSpec(
        column="band",
        paths=("prune.mrs.band",),
        label="MRS band half-width",
        kind="float",
    ),
    FactorSpec(
        column="band_scale",
        paths=("prune.mrs.band_scale",),
        label="MRS band scale",
        kind="string",
    ),
    FactorSpec(
        column="mrs_estimator",
        paths=("prune.mrs.estimator",),
        label="MRS estimator",
        kind="string",
    ),
    FactorSpec(
        column="mrs_reattack",
        paths=("prune.mrs.reattack",),
        label="MRS re-attack per pruned copy",
        kind="bool",
        when=("prune.mrs.estimator", ("prune_damage",)),
    ),
    FactorSpec(
        column="sparsity_target", paths=("prune.sparsity",), label="sparsity", kind="float"
    ),
    FactorSpec(column="budget", paths=("prune.budget",), label="budget", kind="string"),
    FactorSpec(
        column="bn_recalibration",
        paths=("prune.bn_recalibration",),
        label="BN recalibration batches",
        kind="int",
    ),
    FactorSpec(
        column="finetune_method",
        paths=("finetune.method",),
        label="fine-tuning method",
        kind="string",
    ),
    FactorSpec(
        column="finetune_epochs",
        paths=("finetune.epochs",),
        label="fine-tuning epochs",
        kind="int",
        when=("finetune.method", _TRAINED),
    ),
    FactorSpec(
        column="lr",
        paths=("finetune.lr",),
        label="learning rate",
        kind="float",
        when=("finetune.method", _TRAINED),
    ),
    FactorSpec(
        column="schedule",
        paths=("finetune.schedule",),
        label="LR schedule",
        kind="string",
        when=("finetune.method", _TRAINED),
    ),
    FactorSpec(
        column="beta",
        paths=("finetune.trades.beta", "finetune.mart.beta"),
        label="TRADES/MART beta",
        kind="float",
    ),
    FactorSpec(
        column="attack_bn",
        paths=("finetune.attack_bn",),
        label="mode while generating training attacks",
        kind="string",
        when=("finetune.method", tuple(ATTACK_BN_REFERENCE)),
    ),
    FactorSpec(
        column="val_source", paths=("data.val_source",), label="validation from", kind="string"
    ),
)

#: Factor columns of the trials table, in table order.
FACTOR_COLUMNS: tuple[str, ...] = tuple(f.column for f in FACTORS)
_BY_COLUMN = {f.column: f for f in FACTORS}


def factor(column: str) -> FactorSpec:
    """The factor declared for `column` (KeyError when it is not a factor)."""
    return _BY_COLUMN[column]


def factor_for_path(path: str) -> FactorSpec | None:
    """The factor whose value a config key path holds, if any."""
    return next((f for f in FACTORS if path in f.paths), None)


def label(column: str) -> str:
    """Human name of a factor column (the column itself for anything else)."""
    spec = _BY_COLUMN.get(column)
    return spec.label if spec is not None else column


def _lookup(tree: Mapping[str, Any]) -> Callable[[str], Any]:
    def get(path: str) -> Any:
        node: Any = tree
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node

    return get


def factor_values(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """Every factor column's value from a resolved trial config; inapplicable ones are None."""
    get = _lookup(resolved)
    return {f.column: f.value(get) for f in FACTORS}
