"""One SGD training loop for dense training and fine-tuning, resumable at epoch boundaries.

Written by hand rather than with a framework: the loop is the hot path, and a checkpoint must
capture model, optimizer, schedule, epoch and every RNG so that a resumed trial matches an
uninterrupted one.

No host synchronisation inside an epoch: the loss is summed as a tensor, and a non-finite loss
is caught by a device-side flag (the first bad step and its value) read back every
`runtime.check_every` steps and at the end of the epoch; the trial then fails naming the epoch
and step. On CUDA the generator behind shuffling, augmentation and random starts lives on the
device, so no draw is copied from the host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robprune.config import TrainRecipe
from robprune.data import TensorSplit, iterate_batches, place_split
from robprune.errors import TrialFailed
from robprune.runtime import Runtime
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
        recipe: TrainRecipe,
        adversarial: AdversarialSetting,
        augment: bool,
        device: torch.device,
        seed: int,
        runtime: Runtime | None = None,
    ):
        """
        Args:
            model: the network, already on `device`.
            train: training split (uint8 or float tensors on CPU or `device`).
            recipe: the SGD recipe (robprune.config.TrainRecipe): objective (`method`: ce,
                pgd_at, trades, mart, fgsm_rs), epochs the schedule spans, lr, schedule,
                warm-up, weight decay, momentum, and batch size (the last partial batch is
                dropped when the split is larger than one batch, so BatchNorm never sees a
                batch of one).
            adversarial: threat model for the adversarial objectives.
            augment: random crop + flip (natural images only).
            device: where the work runs.
            seed: seeds the generator behind shuffling, augmentation and random starts (a CPU
                generator on CPU, a CUDA one on CUDA).
            runtime: autocast, memory format, compile, data placement, flag reads
                (default: `Runtime.default(device)`, i.e. every switch on auto).
        """
        self.runtime = runtime if runtime is not None else Runtime.default(device)
        self.model = self.runtime.prepare(model)
        self._forward = self.runtime.compiled(self.model)
        self.train = place_split(train, device, self.runtime.data_placement)
        self.loss_fn = objective(recipe.method)
        self.epochs = epochs = recipe.epochs
        self.batch_size = batch_size = recipe.batch_size
        self.adversarial = adversarial
        self.augment = augment
        self.device = device
        rng_device = device if device.type == "cuda" else torch.device("cpu")
        self.generator = torch.Generator(device=rng_device).manual_seed(seed)
        self.drop_last = len(train) > batch_size
        steps = len(train) // batch_size if self.drop_last else 1
        self.steps_per_epoch = max(steps, 1)
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=recipe.lr,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
        )
        self.scheduler = build_scheduler(
            self.optimizer,
            schedule=recipe.schedule,
            epochs=epochs,
            steps_per_epoch=self.steps_per_epoch,
            warmup_epochs=recipe.warmup_epochs,
        )
        self.epoch = 0

    def run_epoch(self) -> EpochStats:
        """Train one epoch; a non-finite loss stops the trial with the step where it happened."""
        start = time.perf_counter()
        runtime = self.runtime
        self.model.train()
        total = torch.zeros((), device=self.device)
        # Device-side record of the first non-finite loss: no `.item()` per step.
        finite = torch.ones((), dtype=torch.bool, device=self.device)
        finite_steps = torch.zeros((), dtype=torch.long, device=self.device)
        bad_loss = torch.zeros((), device=self.device)
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
            with runtime.autocast():
                loss = self.loss_fn(
                    self._forward, runtime.format(x), y, self.adversarial, self.generator
                )
            loss = loss.float()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            value = loss.detach()
            ok = torch.isfinite(value)
            bad_loss = torch.where(finite & ~ok, value, bad_loss)
            finite &= ok
            finite_steps += finite
            total += value
            steps += 1
            if runtime.check_every and steps % runtime.check_every == 0:
                self._check_finite(finite, finite_steps, bad_loss)
        self._check_finite(finite, finite_steps, bad_loss)
        self.epoch += 1
        mean_loss = (total / max(steps, 1)).item()
        return EpochStats(
            epoch=self.epoch,
            lr=self.optimizer.param_groups[0]["lr"],
            train_loss=mean_loss,
            wall_s=time.perf_counter() - start,
        )

    def _check_finite(
        self, finite: torch.Tensor, finite_steps: torch.Tensor, bad_loss: torch.Tensor
    ) -> None:
        """One host sync: raise TrialFailed naming the epoch and step of the first bad loss."""
        if not bool(finite):
            raise TrialFailed(
                f"non-finite training loss ({bad_loss.item()}) at epoch {self.epoch + 1}, "
                f"step {int(finite_steps) + 1}: lower the learning rate"
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
