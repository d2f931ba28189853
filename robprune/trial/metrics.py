"""The final evaluation on the test split and the metric columns of DESIGN §5."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import robprune
from robprune.attacks import Attack
from robprune.config import TrialConfig
from robprune.data import DataSplits, TensorSplit
from robprune.evaluation import accuracy_under, evaluate
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
    wall_s: float,
    val_subset: TensorSplit,
    epoch_attack: Attack,
) -> TrialResult:
    """Evaluate the fine-tuned model once on the test split and assemble the result."""
    ev_cfg = config.eval
    names = list(ev_cfg.attacks)
    pgd_column = pgd_column_attack(config)
    if pgd_column not in names:
        names.append(pgd_column)
    if ev_cfg.autoattack == "all":
        names += [n for n in ("apgd_ce", "apgd_t") if n not in names]
    test = limited_test_split(ev_cfg, data)
    ev = evaluate(
        model,
        test,
        names,
        epsilon=config.epsilon,
        step_size=config.step_size,
        norm=config.threat.norm,
        batch_size=ev_cfg.batch_size,
        device=device,
        runtime=runtime,
    )
    kw = {"batch_size": ev_cfg.batch_size, "device": device, "runtime": runtime}
    val_clean = accuracy_under(model, val_subset, None, **kw)
    val_robust = accuracy_under(model, val_subset, epoch_attack, **kw)

    def first(prefix: str) -> float | None:
        for name in names:
            if name.startswith(prefix) and not name.endswith("_l2"):
                return ev.accuracy(name)
        return None

    apgd = [ev.attacks[n].correct for n in names if n.startswith("apgd")]
    metrics: dict[str, Any] = {
        "clean_acc": ev.clean_acc,
        "robust_acc": ev.accuracy(ev_cfg.primary),
        "robust_attack": ev_cfg.primary,
        "fgsm_acc": first("fgsm"),
        "pgd_acc": ev.accuracy(pgd_column),
        "cw_acc": first("cw"),
        # worst case over APGD-CE and APGD-T per example; not the official AutoAttack
        "apgd_acc": int(torch.stack(apgd).all(0).sum()) / len(test) if apgd else None,
        "autoattack_acc": None,
        "attacks": {name: out.accuracy for name, out in ev.attacks.items()},
        **prep["summary"],
        "epochs_completed": epochs_done,
        "dense_clean_acc": prep["dense"]["clean_acc"],
        "dense_robust_acc": prep["dense"]["robust_acc"],
        "val_clean_acc": val_clean.accuracy,
        "val_robust_acc": val_robust.accuracy,
        "val_attack": epoch_attack.name,
        "test_size": len(test),
        "wall_s": wall_s,
        "robprune_version": robprune.__version__,
    }
    attack_config = {name: out.config for name, out in ev.attacks.items()}
    attack_config["epoch_attack"] = epoch_attack.config()
    return TrialResult(
        config=config.to_dict(),
        metrics=metrics,
        epochs=history,
        layers=prep["layers"],
        warnings=prep["warnings"] + ev.warnings,
        attack_config=attack_config,
    )
