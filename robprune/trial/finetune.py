"""The fine-tuning epoch loop: train, measure on the validation subset, report, checkpoint."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from robprune.config import TrialConfig
from robprune.data import DataSplits
from robprune.runtime import Runtime
from robprune.training.trainer import Trainer
from robprune.trial.builders import make_trainer, training_threat
from robprune.trial.checkpoint import checkpoint_writer
from robprune.trial.records import EpochReport
from robprune.trial.state import TrialState

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
        adversarial=training_threat(config, beta=ft.beta or 0.0, attack_bn=ft.attack_bn),
        model=model,
        data=data,
        device=device,
        seed=config.seed + 1,
        runtime=runtime,
    )


def run_epochs(
    state: TrialState,
    trainer: Trainer,
    on_epoch: Callable[[EpochReport], None] | None,
) -> None:
    """Run the remaining epochs; `state.history` grows by one row per epoch.

    Each checkpoint saves `state.wall_s()`, the trial's elapsed time so far (including any run
    before a resume).
    """
    ft = state.config.finetune
    while trainer.epoch < ft.epochs:
        stats = trainer.run_epoch()
        clean, robust = state.measure_val()
        row = {
            "epoch": stats.epoch,
            "lr": stats.lr,
            "train_loss": stats.train_loss,
            "clean_acc": clean,
            "robust_acc": robust,
            "wall_s": stats.wall_s,
        }
        state.history.append(row)
        state.log(
            f"finetune {ft.method} epoch {stats.epoch}/{ft.epochs} loss {stats.train_loss:.4f} "
            f"val clean {clean:.3f} {state.epoch_attack.name} {robust:.3f}"
        )
        if on_epoch is None:
            continue
        save = checkpoint_writer(state, trainer)
        on_epoch(EpochReport(epoch=stats.epoch, metrics=dict(row), save_checkpoint=save))
