"""The final evaluation on the test split and the metric columns (docs/results.md).

The evaluation itself (attack suite, official AutoAttack when `eval.autoattack` is a version,
masking flags) is `robprune.evaluation.final`, shared with the finalists stage.
"""

from __future__ import annotations

from typing import Any

import robprune
from robprune.config import TrialConfig
from robprune.evaluation.final import FinalSuite, final_evaluation
from robprune.trial.records import TrialResult
from robprune.trial.state import TrialState
from robprune.trial.subsets import limited_test_split

__all__ = ["final_result", "final_suite", "pgd_column_attack"]


def pgd_column_attack(config: TrialConfig) -> str:
    """The attack behind the `pgd_acc` column: PGD of `threat.eval_steps` steps in the threat
    norm (run even when `eval.attacks` does not list it)."""
    return f"pgd{config.threat.eval_steps}"


def final_suite(config: TrialConfig) -> FinalSuite:
    """The trial's final evaluation: `eval.attacks` plus the `pgd_acc` column's attack, the
    strong response (`eval.strong_images`), and the official AutoAttack when `eval.autoattack`
    is a version (finalists: after a search)."""
    ev_cfg = config.eval
    names = list(ev_cfg.attacks)
    pgd_column = pgd_column_attack(config)
    if pgd_column not in names:
        names.append(pgd_column)
    return FinalSuite(
        attacks=tuple(names),
        primary=ev_cfg.primary,
        threat=config.resolved_threat,
        batch_size=ev_cfg.batch_size,
        pgd_column=pgd_column,
        autoattack=ev_cfg.autoattack,
        autoattack_n=ev_cfg.autoattack_n,
        seed=config.seed,
        strong_images=ev_cfg.strong_images,
        strong_targets=ev_cfg.strong_targets,
    )


def final_result(state: TrialState, *, epochs_done: int) -> TrialResult:
    """Evaluate the fine-tuned model once on the test split and assemble the result.

    `state.wall_s()` is read after the final evaluation so that the `wall_s` column covers the
    whole trial, AutoAttack included.
    """
    config, prepared = state.config, state.prepared
    test = limited_test_split(config.eval, state.data)
    ev = final_evaluation(
        state.model,
        test,
        final_suite(config),
        device=state.device,
        runtime=state.runtime,
        log=state.log,
    )
    val_clean, val_robust = state.measure_val()
    metrics: dict[str, Any] = {
        **ev.metrics,
        **prepared.summary,
        "epochs_completed": epochs_done,
        "dense_clean_acc": prepared.dense.clean_acc,
        "dense_robust_acc": prepared.dense.robust_acc,
        "dense_checkpoint_sha256": prepared.dense.checkpoint_sha256,
        "val_clean_acc": val_clean,
        "val_robust_acc": val_robust,
        "val_attack": state.epoch_attack.name,
        "val_source": config.data.val_source,  # validation carved from train or from test
        "wall_s": state.wall_s(),
        "robprune_version": robprune.__version__,
    }
    attack_config = dict(ev.attack_config)
    attack_config["epoch_attack"] = state.epoch_attack.config()
    return TrialResult(
        config=config.to_dict(),
        metrics=metrics,
        epochs=state.history,
        layers=prepared.layers,
        warnings=prepared.warnings + ev.warnings,
        attack_config=attack_config,
    )
