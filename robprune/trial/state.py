"""A running trial's shared state, as one record: what the epoch loop, the checkpoints and the
final result all read, built once by `run_trial` (fresh or resumed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robprune.attacks import Attack
from robprune.config import TrialConfig
from robprune.data import DataSplits, TensorSplit
from robprune.evaluation.accuracy import accuracy_under
from robprune.runtime import Runtime
from robprune.trial.records import PreparedTrial

__all__ = ["TrialState"]


@dataclass(kw_only=True)
class TrialState:
    """One trial after `prepare` (or a resume): the pruned model and everything around it."""

    config: TrialConfig
    """The validated trial config."""
    data: DataSplits
    """The trial's splits (validation carved with the trial seed)."""
    device: torch.device
    """Where the model and the attacks run."""
    runtime: Runtime
    """How the hot loops run on `device` (autocast, memory format, ...)."""
    model: nn.Module
    """The pruned model (fine-tuned in place)."""
    prepared: PreparedTrial
    """Size, layers, warnings and dense reference from `prepare`."""
    history: list[dict[str, Any]]
    """One row per completed fine-tuning epoch (grows in place)."""
    val_subset: TensorSplit
    """The fixed validation subset measured after every epoch (the search objective)."""
    epoch_attack: Attack
    """The attack of that measurement (`eval.epoch_attack`)."""
    wall_s: Callable[[], float]
    """The trial's elapsed seconds so far, including any run before a resume."""
    log: Callable[[str], None]
    """Progress lines."""

    def measure_val(self) -> tuple[float, float]:
        """Clean and epoch-attack accuracy on the validation subset, now."""
        kw: dict[str, Any] = {
            "batch_size": self.config.eval.batch_size,
            "device": self.device,
            "runtime": self.runtime,
        }
        clean = accuracy_under(self.model, self.val_subset, None, **kw)
        robust = accuracy_under(self.model, self.val_subset, self.epoch_attack, **kw)
        return clean.accuracy, robust.accuracy
