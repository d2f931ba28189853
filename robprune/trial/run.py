"""`run_trial`: the order of a trial's stages, fresh or resumed from a checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robprune import attacks
from robprune.config import TrialConfig, parse_trial_config
from robprune.data import DataSplits
from robprune.errors import BadInput
from robprune.io.atomic import atomic_torch_save
from robprune.models.serialization import pruned_state_dict
from robprune.runtime import Runtime, resolve_device, resolve_runtime, seed_everything
from robprune.trial.builders import build_model, load_trial_data
from robprune.trial.checkpoint import Resumed, load_checkpoint
from robprune.trial.finetune import finetune_trainer, run_epochs
from robprune.trial.metrics import final_result
from robprune.trial.prepare import prepare
from robprune.trial.records import EpochReport, PreparedTrial, TrialResult
from robprune.trial.state import TrialState
from robprune.trial.subsets import epoch_subset

__all__ = ["run_trial"]


def _start(
    config: TrialConfig,
    data: DataSplits,
    resumed: Resumed | None,
    device: torch.device,
    runtime: Runtime,
    log: Callable[[str], None],
) -> tuple[nn.Module, PreparedTrial, list[dict[str, Any]], float]:
    """The pruned model and its record: prepared now, or restored from a checkpoint (with
    the epochs and seconds already spent)."""
    if resumed is None:
        model, prepared = prepare(config, data, device, log, runtime=runtime)
        return model, prepared, [], 0.0
    if resumed.config != config.to_dict():
        raise BadInput("resume: the checkpoint was written by a different trial config")
    model = resumed.restore_model(build_model(config.model, data)).to(device)
    return model, resumed.prepared, resumed.history, resumed.wall_s


def run_trial(
    config: Mapping[str, Any] | TrialConfig,
    *,
    on_epoch: Callable[[EpochReport], None] | None = None,
    resume: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    save_model: str | Path | None = None,
) -> TrialResult:
    """Run one trial; `resume` is a directory written by `EpochReport.save_checkpoint`.

    `save_model` writes the pruned, fine-tuned weights there (tensors and plain values only:
    load with `torch.load(weights_only=True)` and `load_pruned_state_dict`).
    """
    log = log or (lambda message: None)
    start = time.perf_counter()
    config = parse_trial_config(config)
    device = resolve_device(config.device)
    runtime = resolve_runtime(config.runtime, device)
    seed_everything(config.seed)
    data = load_trial_data(config.data, seed=config.seed)
    resumed = load_checkpoint(resume) if resume is not None else None
    model, prepared, history, elapsed_before = _start(config, data, resumed, device, runtime, log)
    state = TrialState(
        config=config,
        data=data,
        device=device,
        runtime=runtime,
        model=model,
        prepared=prepared,
        history=history,
        val_subset=epoch_subset(data, config.eval.epoch_subset, seed=config.seed),
        epoch_attack=attacks.threat_attack(config.eval.epoch_attack, config.resolved_threat),
        wall_s=lambda: elapsed_before + time.perf_counter() - start,
        log=log,
    )
    trainer = finetune_trainer(config, model, data, device, runtime)
    if trainer is not None:
        if resumed is not None:
            trainer.load_state_dict(resumed.trainer_state)
        run_epochs(state, trainer, on_epoch)
    if save_model is not None:
        atomic_torch_save(pruned_state_dict(model), Path(save_model))
    return final_result(state, epochs_done=trainer.epoch if trainer is not None else 0)
