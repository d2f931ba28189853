"""One SGD training loop for dense training and fine-tuning, resumable at epoch boundaries.

Written by hand rather than with a framework: the loop is the hot path, and a checkpoint must
capture model, optimizer, schedule, epoch and every RNG so that a resumed trial matches an
uninterrupted one.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robprune.data import TensorSplit, iterate_batches
from robprune.errors import TrialFailed
from robprune.training.losses import AdversarialSetting, objective
from robprune.training.schedules import build_scheduler

__all__ = ["Trainer", "EpochStats"]


@dataclass(kw_only=True)
class EpochStats:
    epoch: int
    """Completed epochs, 1-based."""
    lr: float
    """Learning rate at the end of the epoch."""
    train_loss: float
    """Mean training loss over the epoch."""
    wall_s: float
    """Seconds the epoch took."""


class Trainer:
    """SGD over a tensor split with one of the objectives of `training.losses`."""

    def __init__(
        self,
        *,
        model: nn.Module,
        train: TensorSplit,
        method: str,
        epochs: int,
        lr: float,
        schedule: str,
        warmup_epochs: int,
        batch_size: int,
        weight_decay: float,
        momentum: float,
        adversarial: AdversarialSetting,
        augment: bool,
        device: torch.device,
        seed: int,
    ):
        """
        Args:
            model: the network, already on `device`.
            train: training split (uint8 or float tensors on CPU or `device`).
            method: objective name (ce, pgd_at, trades, mart, fgsm_rs).
            epochs: total epochs the schedule spans.
            lr / schedule / warmup_epochs / weight_decay / momentum: the SGD recipe.
            batch_size: examples per step; the last partial batch is dropped when the split is
                larger than one batch, so BatchNorm never sees a batch of one.
            adversarial: threat model for the adversarial objectives.
            augment: random crop + flip (natural images only).
            device: where the work runs.
            seed: seeds the generator behind shuffling, augmentation and random starts.
        """
        self.model = model
        self.train = train
        self.loss_fn = objective(method)
        self.epochs = epochs
        self.batch_size = batch_size
        self.adversarial = adversarial
        self.augment = augment
        self.device = device
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.drop_last = len(train) > batch_size
        steps = len(train) // batch_size if self.drop_last else 1
        self.steps_per_epoch = max(steps, 1)
        self.optimizer = torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
        self.scheduler = build_scheduler(
            self.optimizer,
            schedule=schedule,
            epochs=epochs,
            steps_per_epoch=self.steps_per_epoch,
            warmup_epochs=warmup_epochs,
        )
        self.epoch = 0

    def run_epoch(self) -> EpochStats:
        """Train one epoch; a non-finite loss stops the trial with the step where it happened."""
        start = time.perf_counter()
        self.model.train()
        total = torch.zeros((), device=self.device)
        steps = 0
        batches = iterate_batches(
            self.train,
            batch_size=self.batch_size,
            shuffle=True,
            augment=self.augment,
            generator=self.generator,
            device=self.device,
            drop_last=self.drop_last,
        )
        for x, y in batches:
            loss = self.loss_fn(self.model, x, y, self.adversarial, self.generator)
            if not torch.isfinite(loss):
                raise TrialFailed(
                    f"non-finite training loss ({loss.item()}) at epoch "
                    f"{self.epoch + 1}, step {steps + 1}: lower the learning rate"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            total += loss.detach()
            steps += 1
        self.epoch += 1
        mean_loss = (total / max(steps, 1)).item()
        if not math.isfinite(mean_loss):
            raise TrialFailed(f"non-finite training loss at epoch {self.epoch}")
        return EpochStats(
            epoch=self.epoch,
            lr=self.optimizer.param_groups[0]["lr"],
            train_loss=mean_loss,
            wall_s=time.perf_counter() - start,
        )

    def state_dict(self) -> dict[str, Any]:
        """Optimizer, schedule, epoch and RNG states (the model is saved by its owner)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
