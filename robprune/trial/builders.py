"""What a trial builds from its config sections: its data splits, a fresh network, the
training threat and a Trainer for one SGD recipe.

Apart from the dense model (`robprune.trial.dense`) so that the stages that only need a network
or a trainer (fine-tuning, the finalists' re-evaluation) do not go through the dense cache.
"""

from __future__ import annotations

import torch
from torch import nn

from robprune.config import DataConfig, ModelConfig, TrainRecipe, TrialConfig
from robprune.data import DataSplits, load_data
from robprune.models import create_model
from robprune.runtime import Runtime
from robprune.training.losses import AdversarialSetting
from robprune.training.trainer import Trainer

__all__ = ["build_model", "load_trial_data", "make_trainer", "training_threat"]


def load_trial_data(data: DataConfig, *, seed: int) -> DataSplits:
    """The splits a trial sees: its data section, validation carved with the trial seed."""
    return load_data(
        data.dataset,
        data_dir=data.data_dir,
        download=data.download,
        val_fraction=data.val_fraction,
        seed=seed,
        train_limit=data.train_limit,
        synthetic=data.synthetic,
        val_source=data.val_source,
    )


def build_model(model: ModelConfig, data: DataSplits) -> nn.Module:
    """A fresh dense network of the model section, shaped and normalised for `data`."""
    return create_model(
        model.arch,
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        mean=data.mean,
        std=data.std,
        width=model.width,
    )


def training_threat(
    config: TrialConfig, *, beta: float, attack_bn: str | None = None
) -> AdversarialSetting:
    """The threat model adversarial training uses: the trial's norm, radius and step, and the
    recipe's `attack_bn` (None: eval mode, as for the MRS calibration examples)."""
    threat = config.resolved_threat
    return AdversarialSetting(
        epsilon=threat.epsilon,
        step_size=threat.step_size,
        steps=threat.train_steps,
        norm=threat.norm,
        beta=beta,
        attack_bn=attack_bn or "eval",
    )


def make_trainer(
    recipe: TrainRecipe,
    *,
    adversarial: AdversarialSetting,
    model: nn.Module,
    data: DataSplits,
    device: torch.device,
    seed: int,
    runtime: Runtime | None = None,
) -> Trainer:
    """A Trainer for one SGD recipe (dense or fine-tune)."""
    return Trainer(
        recipe=recipe,
        model=model,
        train=data.train,
        augment=data.augment,
        device=device,
        seed=seed,
        adversarial=adversarial,
        runtime=runtime,
    )
