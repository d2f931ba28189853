"""The final evaluation on the test split and the metric columns of DESIGN §5.

The evaluation itself (attack suite, official AutoAttack when `eval.autoattack` is a version,
masking flags) is `robprune.evaluation.final`, shared with the finalists stage.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import robprune
from robprune.attacks import Attack
from robprune.config import TrialConfig
from robprune.data import DataSplits, TensorSplit
from robprune.evaluation.accuracy import accuracy_under
from robprune.evaluation.final import final_evaluation
from robprune.runtime import Runtime
from robprune.trial.records import TrialResult
from robprune.trial.subsets import limited_test_split

__all__ = ["final_result", "pgd_column_attack"]


def pgd_column_attack(config: TrialConfig) -> str:
    """The attack behind the `pgd_acc` column: PGD of `threat.eval_steps` steps in the threat
    norm (run even when `eval.attacks` does not list it)."""
    return f"pgd{config.threat.eval_steps}"


def final_result(
    *,
    config: TrialConfig,
    model: nn.Module,
    data: DataSplits,
    device: torch.device,
    runtime: Runtime | None = None,
    prep: dict[str, Any],
    history: list[dict[str, Any]],
    epochs_done: int,
    wall_s: Callable[[], float],
    val_subset: TensorSplit,
    epoch_attack: Attack,
    log: Callable[[str], None] | None = None,
) -> TrialResult:
    """Evaluate the fine-tuned model once on the test split and assemble the result.

    `wall_s()` is the trial's elapsed time; it is read after the final evaluation so that the
    `wall_s` column covers the whole trial, AutoAttack included.
    """
    ev_cfg = config.eval
    names = list(ev_cfg.attacks)
    pgd_column = pgd_column_attack(config)
    if pgd_column not in names:
        names.append(pgd_column)
    test = limited_test_split(ev_cfg, data)
    ev = final_evaluation(
        model,
        test,
        attacks=names,
        primary=ev_cfg.primary,
        epsilon=config.epsilon,
        step_size=config.step_size,
        norm=config.threat.norm,
        batch_size=ev_cfg.batch_size,
        device=device,
        runtime=runtime,
        pgd_column=pgd_column,
        autoattack=ev_cfg.autoattack,  # standard | rand run here; finalists after a search
        autoattack_n=ev_cfg.autoattack_n,
        seed=config.seed,
        eval_steps=config.threat.eval_steps,
        log=log,
    )
    kw = {"batch_size": ev_cfg.batch_size, "device": device, "runtime": runtime}
    val_clean = accuracy_under(model, val_subset, None, **kw)
    val_robust = accuracy_under(model, val_subset, epoch_attack, **kw)
    metrics: dict[str, Any] = {
        **ev.metrics,
        **prep["summary"],
        "epochs_completed": epochs_done,
        "dense_clean_acc": prep["dense"]["clean_acc"],
        "dense_robust_acc": prep["dense"]["robust_acc"],
        "dense_checkpoint_sha256": prep["dense"].get("checkpoint_sha256"),
        "val_clean_acc": val_clean.accuracy,
        "val_robust_acc": val_robust.accuracy,
        "val_attack": epoch_attack.name,
        "wall_s": wall_s(),
        "robprune_version": robprune.__version__,
    }
    attack_config = dict(ev.attack_config)
    attack_config["epoch_attack"] = epoch_attack.config()
    return TrialResult(
        config=config.to_dict(),
        metrics=metrics,
        epochs=history,
        layers=prep["layers"],
        warnings=prep["warnings"] + ev.warnings,
        attack_config=attack_config,
    )
