"""The results tables of DESIGN §5: one module that `search/` writes and `analysis/` reads.

Imports pyarrow only, so `robprune report` never pulls in torch or Ray.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from robprune.config.factors import FACTOR_COLUMNS, FACTORS
from robprune.io.atomic import atomic_write

__all__ = [
    "TRIALS_SCHEMA",
    "EPOCHS_SCHEMA",
    "LAYERS_SCHEMA",
    "SCHEMAS",
    "FACTOR_COLUMNS",
    "METRIC_COLUMNS",
    "TEST_METRICS",
    "STRUCTURE_METRICS",
    "STRONG_METRICS",
    "table_from_rows",
    "write_table_atomic",
]

_ARROW = {"string": pa.string(), "float": pa.float64(), "int": pa.int64()}

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

TRIALS_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("trial_id", pa.string()),
        ("status", pa.string()),  # TERMINATED | ERROR | RUNNING | PENDING
        ("error", pa.string()),
        ("seed", pa.int64()),
        *((f.column, _ARROW[f.kind]) for f in FACTORS),  # null where a factor does not apply
        ("config_json", pa.string()),
        ("clean_acc", pa.float64()),
        ("robust_acc", pa.float64()),
        ("fgsm_acc", pa.float64()),
        ("pgd_acc", pa.float64()),
        ("cw_acc", pa.float64()),
        ("apgd_acc", pa.float64()),
        ("autoattack_acc", pa.float64()),
        ("params", pa.int64()),
        ("params_dense", pa.int64()),
        ("flops", pa.int64()),
        ("flops_dense", pa.int64()),
        ("achieved_sparsity", pa.float64()),  # fraction of prunable parameters removed
        ("achieved_macs_sparsity", pa.float64()),  # fraction of prunable MACs removed
        ("epochs_completed", pa.int64()),
        ("dense_clean_acc", pa.float64()),
        ("dense_robust_acc", pa.float64()),
        ("wall_s", pa.float64()),
        # the validation subset under eval.epoch_attack: what a search selects on
        ("val_clean_acc", pa.float64()),
        ("val_robust_acc", pa.float64()),
        ("attack_config_json", pa.string()),
        ("robprune_version", pa.string()),
        # optional (search only): restarts from a checkpoint (lost node, killed driver)
        ("restores", pa.int64()),
        ("restored_from_epoch", pa.int64()),  # the epoch of the last restore's checkpoint
        # optional (search only, search.dedupe): the trial this one repeated; its numbers are
        # the original's, answered without training (the report counts a configuration once)
        ("repeat_of", pa.string()),
        # the finalists stage and AutoAttack
        ("finalist", pa.bool_()),  # one of the K best by validation, re-evaluated
        ("finalist_rank", pa.int64()),  # 1 = best; null for other trials
        ("autoattack_label", pa.string()),  # "AutoAttack (standard, official)"
        ("autoattack_n", pa.int64()),  # test examples AutoAttack ran on
        ("autoattack_scope", pa.string()),  # "on the first N test images"
        ("autoattack_clean_acc", pa.float64()),  # clean accuracy on those N images
        # primary attack minus AutoAttack (or our APGD) on the same images; flagged above
        # robprune.evaluation.masking.GAP_THRESHOLD
        ("attack_gap", pa.float64()),
        ("attack_gap_reference", pa.string()),
        # finalists: the full test split under the full suite (the trial's own numbers above
        # may come from a smaller eval.test_limit)
        ("final_clean_acc", pa.float64()),
        ("final_robust_acc", pa.float64()),
        ("final_fgsm_acc", pa.float64()),
        ("final_pgd_acc", pa.float64()),
        ("final_cw_acc", pa.float64()),
        ("final_apgd_acc", pa.float64()),
        ("square_acc", pa.float64()),  # the official Square alone, on the check subset
        ("final_test_size", pa.int64()),
        ("final_attacks_json", pa.string()),  # every attack's accuracy by name
        ("masking_flags_json", pa.string()),  # [{code, detail, meaning}] gradient-masking flags
        # security curves on the check subset: [{factor, epsilon, accuracy[, unbounded]}]
        ("eps_sweep_json", pa.string()),
        ("dense_eps_sweep_json", pa.string()),  # the dense model the finalist was pruned from
        ("dense_checkpoint_sha256", pa.string()),  # a brought dense model (dense.checkpoint)
        # the strong response of every trial (robprune.evaluation.strong): robprune's APGD-CE,
        # then APGD-T on what it left, worst case per image, on a fixed stratified test subset
        # (eval.strong_images); never the official AutoAttack
        ("strong_acc", pa.float64()),  # correct after both attacks (and clean)
        ("strong_suite", pa.string()),  # "apgd_ce+apgd_t3": the attacks and APGD-T's targets
        ("strong_label", pa.string()),  # how tables print it, naming the number of images
        ("strong_n", pa.int64()),  # test images it ran on
        ("strong_clean_acc", pa.float64()),  # clean accuracy on those images
        ("strong_primary_acc", pa.float64()),  # the primary attack's accuracy on those images
        ("strong_apgd_ce_acc", pa.float64()),  # after APGD-CE alone, on those images
        ("strong_wall_s", pa.float64()),  # seconds the strong response took
    ]
)


EPOCHS_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("trial_id", pa.string()),
        ("epoch", pa.int64()),
        ("lr", pa.float64()),
        ("train_loss", pa.float64()),
        ("clean_acc", pa.float64()),
        ("robust_acc", pa.float64()),
        ("wall_s", pa.float64()),
    ]
)

LAYERS_SCHEMA = pa.schema(
    [
        ("experiment", pa.string()),
        ("trial_id", pa.string()),
        ("layer", pa.string()),
        ("mrs", pa.float64()),  # the value the ratio rule read (its group's mean)
        ("ratio", pa.float64()),  # achieved: 1 - channels_after / channels_before
        ("ratio_planned", pa.float64()),  # what the rule asked for, before whole channels
        ("channels_before", pa.int64()),
        ("channels_after", pa.int64()),
        ("params_before", pa.int64()),
        ("params_after", pa.int64()),
        # every MRS estimator the trial computed (prune.mrs.estimator, prune.record_mrs);
        # a test keeps one column per robprune.pruning.MRS_ESTIMATORS entry
        ("mrs_first_order", pa.float64()),
        ("mrs_ascent", pa.float64()),
        ("mrs_prune_damage", pa.float64()),
        ("bn_recalibration", pa.int64()),  # batches BatchNorm was re-estimated on after pruning
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "trials": TRIALS_SCHEMA,
    "epochs": EPOCHS_SCHEMA,
    "layers": LAYERS_SCHEMA,
}


def table_from_rows(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """Build a table with exactly `schema`'s columns; keys missing from a row become null."""
    columns = {f.name: [row.get(f.name) for row in rows] for f in schema}
    return pa.Table.from_pydict(columns, schema=schema)


def write_table_atomic(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write Parquet to a temporary file beside `path`, then rename: readers never see half."""
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
