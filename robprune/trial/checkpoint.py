"""A trial between two epochs, on disk: enough to continue as if never interrupted.

The file holds tensors and plain values only (`torch.load(weights_only=True)`); the pruned
architecture is rebuilt from the saved shapes (`robprune.models.load_pruned_state_dict`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robprune.errors import BadInput
from robprune.io.atomic import atomic_torch_save
from robprune.models.serialization import load_pruned_state_dict, pruned_state_dict
from robprune.training.trainer import Trainer
from robprune.trial.records import PreparedTrial
from robprune.trial.state import TrialState

__all__ = ["CHECKPOINT_FILE", "Resumed", "checkpoint_writer", "load_checkpoint"]

CHECKPOINT_FILE = "trial_state.pt"
_FORMAT = "robprune.trial-checkpoint/1"


@dataclass(kw_only=True)
class Resumed:
    """A checkpoint read back: the trial continues from here."""

    config: dict[str, Any]
    model_state: dict[str, Any]
    trainer_state: dict[str, Any]
    prepared: PreparedTrial
    history: list[dict[str, Any]]
    wall_s: float

    def restore_model(self, model: nn.Module) -> nn.Module:
        """Shrink a fresh dense model to the saved pruned shapes and load the weights."""
        load_pruned_state_dict(model, self.model_state)
        return model


def checkpoint_writer(state: TrialState, trainer: Trainer) -> Callable[[str | Path], Path]:
    """Snapshot the trial now; the returned function writes it into a directory on demand."""
    snapshot = {
        "format": _FORMAT,
        "config": state.config.to_dict(),
        "model": pruned_state_dict(state.model),
        "trainer": trainer.state_dict(),
        "prep": json.dumps(state.prepared.to_json()),
        "history": json.dumps(state.history),
        "wall_s": state.wall_s(),
    }

    def save(directory: str | Path) -> Path:
        return atomic_torch_save(snapshot, Path(directory) / CHECKPOINT_FILE)

    return save


def load_checkpoint(path: str | Path) -> Resumed:
    """Read a checkpoint directory (or file); BadInput when it is missing or foreign."""
    path = Path(path)
    file = path / CHECKPOINT_FILE if path.is_dir() else path
    if not file.is_file():
        raise BadInput(f"resume: no trial checkpoint at {file}")
    state = torch.load(file, map_location="cpu", weights_only=True)
    if state.get("format") != _FORMAT:
        raise BadInput(f"resume: {file} is not a robprune trial checkpoint")
    return Resumed(
        config=state["config"],
        model_state=state["model"],
        trainer_state=state["trainer"],
        prepared=PreparedTrial.from_json(json.loads(state["prep"])),
        history=list(json.loads(state["history"])),
        wall_s=float(state["wall_s"]),
    )
