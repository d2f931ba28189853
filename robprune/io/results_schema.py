"""The three results tables (trials, epochs, layers): one module `search/` writes and
`analysis/` reads, each column with its description in the Arrow schema (docs/results.md is
made from it: `python -m robprune.io.results_doc`).

Imports pyarrow only, so `robprune report` never pulls in torch or Ray.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from robprune.config.factors import FACTOR_COLUMNS, FACTORS, FactorSpec
from robprune.io.atomic import atomic_write

__all__ = [
    "TRIALS_SCHEMA",
    "EPOCHS_SCHEMA",
    "LAYERS_SCHEMA",
    "SCHEMAS",
    "TRIAL_STATES",
    "format_states",
    "LEGACY_COLUMNS",
    "rename_legacy",
    "FACTOR_COLUMNS",
    "METRIC_COLUMNS",
    "TEST_METRICS",
    "STRUCTURE_METRICS",
    "STRONG_METRICS",
    "table_from_rows",
    "write_table_atomic",
]

_ARROW = {"string": pa.string(), "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}

#: Test-split accuracies (fractions in [0, 1]); `robust_acc` is the primary attack's accuracy.
TEST_METRICS: tuple[str, ...] = (
    "clean_acc",
    "robust_acc",
    "fgsm_acc",
    "pgd_acc",
    "cw_acc",
    "apgd_acc",
    "autoattack_acc",
    "strong_acc",
)
#: Structure of the pruned model, known as soon as it is pruned.
STRUCTURE_METRICS: tuple[str, ...] = (
    "params",
    "params_dense",
    "flops",
    "flops_dense",
    "achieved_sparsity",
    "achieved_macs_sparsity",
)
#: The strong response's other numbers (robprune.evaluation.strong; `strong_acc` is above).
STRONG_METRICS: tuple[str, ...] = (
    "strong_n",
    "strong_clean_acc",
    "strong_primary_acc",
    "strong_apgd_ce_acc",
    "strong_wall_s",
)
#: Every numeric metric column of the trials table.
METRIC_COLUMNS: tuple[str, ...] = (
    *TEST_METRICS,
    *STRUCTURE_METRICS,
    "epochs_completed",
    "dense_clean_acc",
    "dense_robust_acc",
    "wall_s",
    "val_clean_acc",
    "val_robust_acc",
    *STRONG_METRICS,
)

#: The one vocabulary of a trial's state: the trials table's `status`, status.json, the
#: progress lines and `robprune status`/`list` all say these words (Ray Tune's).
TRIAL_STATES: dict[str, str] = {
    "TERMINATED": "finished: ran its epochs, or was stopped early by the scheduler (ASHA)",
    "ERROR": "failed; the `error` column says why",
    "RUNNING": "training now",
    "PENDING": "waiting to start, or to continue after an interruption (`robprune resume`)",
}


def format_states(counts: dict[str, int], total: int | None = None) -> str:
    """`3 TERMINATED, 1 ERROR, 0 RUNNING, 2 PENDING of 6`: counts in the one vocabulary."""
    said = ", ".join(f"{counts.get(state, 0)} {state}" for state in TRIAL_STATES)
    return f"{said} of {total}" if total else said


_FRACTION = "fraction in [0, 1]"


def _f(
    name: str,
    kind: pa.DataType,
    description: str,
    *,
    unit: str = "",
    split: str = "",
    attack: str = "",
) -> pa.Field:
    """A column with its description (Arrow field metadata, read back from the Parquet file):
    what it means, its unit, the data split and the attack behind the number, where any."""
    meta = {"description": description, "unit": unit, "split": split, "attack": attack}
    return pa.field(name, kind, metadata={k: v for k, v in meta.items() if v})


def _acc(name: str, what: str, attack: str, split: str = "test") -> pa.Field:
    return _f(name, pa.float64(), what, unit=_FRACTION, split=split, attack=attack)


def _factor(factor: FactorSpec) -> pa.Field:
    return _f(
        factor.column,
        _ARROW[factor.kind],
        f"factor: {factor.label} ({' or '.join(factor.paths)} of the trial config); null "
        "where it does not apply to the trial",
        unit="as in the config",
    )


_ID = (
    _f("experiment", pa.string(), "the experiment's name (its folder under the storage)"),
    _f("trial_id", pa.string(), "Ray Tune's id of the trial, unique within the experiment"),
)
_PRIMARY = "eval.primary (see robust_attack)"
_FINAL = "the full test split, finalists only"
_STRONG = "a fixed stratified test subset (eval.strong_images, see strong_n)"

TRIALS_SCHEMA = pa.schema(
    [
        *_ID,
        _f("status", pa.string(), "the trial's state: " + " | ".join(TRIAL_STATES)),
        _f("error", pa.string(), "why the trial failed, one line (null unless ERROR)"),
        _f("seed", pa.int64(), "seed of the dense model, pruning and fine-tuning"),
        *(_factor(f) for f in FACTORS),
        _f("config_json", pa.string(), "the fully resolved trial config", unit="JSON"),
        _acc("clean_acc", "accuracy without attack", "none"),
        _acc("robust_acc", "accuracy under the primary attack", _PRIMARY),
        _acc("fgsm_acc", "accuracy under FGSM (null if not in eval.attacks)", "fgsm"),
        _acc("pgd_acc", "accuracy under PGD with threat.eval_steps steps", "see pgd_attack"),
        _acc("cw_acc", "accuracy under PGD on the CW margin", "see cw_attack"),
        _acc("apgd_acc", "our APGD-CE and APGD-T, worst case per example", "apgd_ce + apgd_t"),
        _acc("autoattack_acc", "the official AutoAttack (eval.autoattack)", "autoattack_label"),
        _f("params", pa.int64(), "parameters of the pruned model", unit="parameters"),
        _f("params_dense", pa.int64(), "parameters of the dense model", unit="parameters"),
        _f("flops", pa.int64(), "multiply-accumulates of one forward pass, pruned", unit="MACs"),
        _f("flops_dense", pa.int64(), "multiply-accumulates, dense model", unit="MACs"),
        _f(
            "achieved_sparsity",
            pa.float64(),
            "fraction of prunable parameters removed",
            unit=_FRACTION,
        ),
        _f(
            "achieved_macs_sparsity",
            pa.float64(),
            "fraction of prunable MACs removed",
            unit=_FRACTION,
        ),
        _f("epochs_completed", pa.int64(), "fine-tuning epochs the trial ran", unit="epochs"),
        _acc("dense_clean_acc", "the dense model's accuracy without attack", "none"),
        _acc("dense_robust_acc", "the dense model's accuracy, primary attack", _PRIMARY),
        _f("wall_s", pa.float64(), "wall time of the trial", unit="seconds"),
        _acc(
            "val_clean_acc",
            "accuracy without attack on the validation subset after the last epoch",
            "none",
            "validation",
        ),
        _acc(
            "val_robust_acc",
            "accuracy on the validation subset after the last epoch: what a search selects on",
            "eval.epoch_attack (see val_robust_attack)",
            "validation",
        ),
        _f("robust_attack", pa.string(), "the attack of robust_acc (eval.primary), e.g. pgd20"),
        _f("val_robust_attack", pa.string(), "the attack of val_robust_acc (eval.epoch_attack)"),
        _f("pgd_attack", pa.string(), "the attack of pgd_acc, e.g. pgd20"),
        _f("cw_attack", pa.string(), "the attack of cw_acc, e.g. cw20"),
        _f("attack_norm", pa.string(), "the threat model's norm: linf | l2"),
        _f("attack_epsilon", pa.float64(), "the threat model's radius", unit="pixels in [0, 1]"),
        _f(
            "attack_config_json",
            pa.string(),
            "every attack behind a number here, with its full settings",
            unit="JSON",
        ),
        _f("robprune_version", pa.string(), "the robprune that ran the trial"),
        _f("restores", pa.int64(), "restarts from a checkpoint (lost node, killed driver)"),
        _f("restored_from_epoch", pa.int64(), "the epoch of the last restore's checkpoint"),
        _f(
            "repeat_of",
            pa.string(),
            "the trial this one repeated (search.dedupe): its numbers are the original's, "
            "answered without training; the report counts a configuration once",
        ),
        _f("finalist", pa.bool_(), "one of the K best by validation, re-evaluated"),
        _f("finalist_rank", pa.int64(), "1 = best; null for other trials"),
        _f("autoattack_label", pa.string(), 'e.g. "AutoAttack (standard, official)"'),
        _f("autoattack_n", pa.int64(), "test examples AutoAttack ran on", unit="examples"),
        _f("autoattack_scope", pa.string(), 'e.g. "on the first N test images"'),
        _acc(
            "autoattack_clean_acc",
            "accuracy without attack on AutoAttack's examples",
            "none",
        ),
        _f(
            "attack_gap",
            pa.float64(),
            "primary attack minus AutoAttack (or our APGD) on the same images; flagged above "
            "robprune.evaluation.masking.GAP_THRESHOLD",
            unit="fraction (difference of accuracies)",
            split="test",
        ),
        _f("attack_gap_reference", pa.string(), "the attack attack_gap compares with"),
        _acc("final_clean_acc", "accuracy without attack", "none", _FINAL),
        _acc("final_robust_acc", "accuracy under the primary attack", _PRIMARY, _FINAL),
        _acc("final_fgsm_acc", "accuracy under FGSM", "fgsm", _FINAL),
        _acc("final_pgd_acc", "accuracy under PGD", "see pgd_attack", _FINAL),
        _acc("final_cw_acc", "accuracy under PGD on the CW margin", "see cw_attack", _FINAL),
        _acc("final_apgd_acc", "our APGD-CE + APGD-T, worst case", "apgd_ce + apgd_t", _FINAL),
        _acc("square_acc", "the official Square attack alone", "square", "the check subset"),
        _f("final_test_size", pa.int64(), "test examples of the final_* numbers", unit="examples"),
        _f(
            "final_attacks_json",
            pa.string(),
            "every attack's accuracy by name (finalists)",
            unit="JSON",
            split="test",
        ),
        _f(
            "masking_flags_json",
            pa.string(),
            "gradient-masking flags: [{code, detail, meaning}]",
            unit="JSON",
        ),
        _f(
            "eps_sweep_json",
            pa.string(),
            "security curve: [{factor, epsilon, accuracy[, unbounded]}]",
            unit="JSON",
            split="the check subset",
        ),
        _f(
            "dense_eps_sweep_json",
            pa.string(),
            "the same curve for the dense model the finalist was pruned from",
            unit="JSON",
            split="the check subset",
        ),
        _f(
            "dense_checkpoint_sha256",
            pa.string(),
            "SHA-256 of a brought dense model (dense.checkpoint)",
        ),
        # the strong response of every trial (robprune.evaluation.strong): robprune's APGD-CE,
        # then APGD-T on what it left, worst case per image, on a fixed stratified test subset
        # (eval.strong_images); never the official AutoAttack
        _acc(
            "strong_acc",
            "correct after both APGD-CE and APGD-T (worst case per image); robprune's APGD, "
            "not the official AutoAttack",
            "strong_suite",
            _STRONG,
        ),
        _f(
            "strong_suite",
            pa.string(),
            "the strong response's attacks, e.g. apgd_ce+apgd_t3 (APGD-T's target classes)",
        ),
        _f("strong_label", pa.string(), "how tables print the strong response, with its images"),
        _f("strong_n", pa.int64(), "test images the strong response ran on", unit="images"),
        _acc("strong_clean_acc", "accuracy without attack on those images", "none", _STRONG),
        _acc(
            "strong_primary_acc",
            "the primary attack's accuracy on those images",
            _PRIMARY,
            _STRONG,
        ),
        _acc(
            "strong_apgd_ce_acc",
            "accuracy after APGD-CE alone on those images",
            "apgd_ce",
            _STRONG,
        ),
        _f("strong_wall_s", pa.float64(), "seconds the strong response took", unit="s"),
    ]
)

EPOCHS_SCHEMA = pa.schema(
    [
        *_ID,
        _f("epoch", pa.int64(), "fine-tuning epochs completed, 1-based", unit="epochs"),
        _f("lr", pa.float64(), "learning rate during the epoch"),
        _f("train_loss", pa.float64(), "mean training loss of the epoch (the method's)"),
        _acc(
            "val_clean_acc",
            "accuracy without attack on the validation subset",
            "none",
            "validation",
        ),
        _acc(
            "val_robust_acc",
            "accuracy on the validation subset: what the search and ASHA read",
            "eval.epoch_attack (see val_robust_attack in trials)",
            "validation",
        ),
        _f("wall_s", pa.float64(), "wall time of the trial up to this epoch", unit="seconds"),
    ]
)

#: Columns renamed since an earlier robprune wrote them: table -> {old name: new name}.
#: Readers rename them on read (`rename_legacy`), so old experiments stay readable.
LEGACY_COLUMNS: dict[str, dict[str, str]] = {
    "epochs": {"clean_acc": "val_clean_acc", "robust_acc": "val_robust_acc"},
}

LAYERS_SCHEMA = pa.schema(
    [
        *_ID,
        _f("layer", pa.string(), "the pruned layer's module name"),
        _f("mrs", pa.float64(), "the MRS value the ratio rule read (its group's mean)"),
        _f(
            "ratio", pa.float64(), "achieved: 1 - channels_after / channels_before", unit=_FRACTION
        ),
        _f(
            "ratio_planned",
            pa.float64(),
            "what the rule asked for, before whole channels",
            unit=_FRACTION,
        ),
        _f("channels_before", pa.int64(), "output channels before pruning", unit="channels"),
        _f("channels_after", pa.int64(), "output channels after pruning", unit="channels"),
        _f("params_before", pa.int64(), "the layer's parameters before", unit="parameters"),
        _f("params_after", pa.int64(), "the layer's parameters after", unit="parameters"),
        # a test keeps one column per robprune.pruning.MRS_ESTIMATORS entry
        _f("mrs_first_order", pa.float64(), "MRS by the first_order estimator"),
        _f("mrs_ascent", pa.float64(), "MRS by the ascent estimator"),
        _f("mrs_prune_damage", pa.float64(), "MRS by the prune_damage estimator"),
        _f(
            "bn_recalibration",
            pa.int64(),
            "batches BatchNorm was re-estimated on after pruning",
            unit="batches",
        ),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "trials": TRIALS_SCHEMA,
    "epochs": EPOCHS_SCHEMA,
    "layers": LAYERS_SCHEMA,
}


def rename_legacy(table: str, names: list[str]) -> dict[str, str]:
    """{old: new} for the columns of `table` that an earlier robprune wrote under old names
    (only where the new name is absent)."""
    renames = LEGACY_COLUMNS.get(table, {})
    return {old: new for old, new in renames.items() if old in names and new not in names}


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly `schema`'s columns; keys missing from a row become null."""
    columns = {f.name: [row.get(f.name) for row in rows] for f in schema}
    return pa.Table.from_pydict(columns, schema=schema)


def write_table_atomic(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write Parquet to a temporary file beside `path`, then rename: readers never see half."""
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
