"""The fine-tuning epoch loop: train, measure on the validation subset, report, checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from robprune.attacks import Attack
from robprune.config import TrialConfig
from robprune.data import DataSplits, TensorSplit
from robprune.evaluation.accuracy import accuracy_under
from robprune.runtime import Runtime
from robprune.training.trainer import Trainer
from robprune.trial.builders import make_trainer, training_threat
from robprune.trial.checkpoint import checkpoint_writer
from robprune.trial.records import EpochReport

__all__ = ["finetune_trainer", "run_epochs"]


def finetune_trainer(
    config: TrialConfig,
    model: nn.Module,
    data: DataSplits,
    device: torch.device,
    runtime: Runtime | None = None,
) -> Trainer | None:
    """The fine-tuning Trainer, or None when the trial does not fine-tune."""
    ft = config.finetune
    if ft.method == "none" or ft.epochs == 0:
        return None
    return make_trainer(
        ft,
        adversarial=training_threat(config, beta=ft.beta or 0.0),
        model=model,
        data=data,
        device=device,
        seed=config.seed + 1,
        runtime=runtime,
    )


def run_epochs(
    *,
    config: TrialConfig,
    model: nn.Module,
    trainer: Trainer,
    device: torch.device,
    runtime: Runtime | None = None,
    val_subset: TensorSplit,
    epoch_attack: Attack,
    prep: dict[str, Any],
    history: list[dict[str, Any]],
    wall_s: Callable[[], float],
    on_epoch: Callable[[EpochReport], None] | None,
    log: Callable[[str], None],
) -> None:
    """Run the remaining epochs; `history` grows by one row per epoch.

    `wall_s()` is the trial's elapsed time so far (including any run before a resume), saved
    with each checkpoint.
    """
    ft = config.finetune
    batch_size = config.eval.batch_size
    while trainer.epoch < ft.epochs:
        stats = trainer.run_epoch()
        kw = {"batch_size": batch_size, "device": device, "runtime": runtime}
        clean = accuracy_under(model, val_subset, None, **kw)
        robust = accuracy_under(model, val_subset, epoch_attack, **kw)
        row = {
            "epoch": stats.epoch,
            "lr": stats.lr,
            "train_loss": stats.train_loss,
            "clean_acc": clean.accuracy,
            "robust_acc": robust.accuracy,
            "wall_s": stats.wall_s,
        }
        history.append(row)
        log(
            f"finetune {ft.method} epoch {stats.epoch}/{ft.epochs} loss {stats.train_loss:.4f} "
            f"val clean {clean.accuracy:.3f} {epoch_attack.name} {robust.accuracy:.3f}"
        )
        if on_epoch is None:
            continue
        save = checkpoint_writer(
            config=config.to_dict(),
            model=model,
            trainer=trainer,
            prep=prep,
            history=history,
            wall_s=wall_s(),
        )
        on_epoch(EpochReport(epoch=stats.epoch, metrics=dict(row), save_checkpoint=save))
