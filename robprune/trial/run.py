"""`run_trial`: the order of a trial's stages, fresh or resumed from a checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from robprune import attacks
from robprune.config import TrialConfig, parse_trial_config
from robprune.errors import BadInput
from robprune.io.atomic import atomic_torch_save
from robprune.models.serialization import pruned_state_dict
from robprune.runtime import resolve_device, resolve_runtime, seed_everything
from robprune.trial.builders import build_model, load_trial_data
from robprune.trial.checkpoint import load_checkpoint
from robprune.trial.finetune import finetune_trainer, run_epochs
from robprune.trial.metrics import final_result
from robprune.trial.prepare import prepare
from robprune.trial.records import EpochReport, TrialResult
from robprune.trial.subsets import epoch_subset

__all__ = ["run_trial"]


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
    if resumed is not None:
        if resumed.config != config.to_dict():
            raise BadInput("resume: the checkpoint was written by a different trial config")
        model = resumed.restore_model(build_model(config.model, data)).to(device)
        prep, history, elapsed_before = resumed.prep, resumed.history, resumed.wall_s
    else:
        model, prep = prepare(config, data, device, log, runtime=runtime)
        history, elapsed_before = [], 0.0

    def wall_s() -> float:
        return elapsed_before + time.perf_counter() - start

    trainer = finetune_trainer(config, model, data, device, runtime)
    if trainer is not None and resumed is not None:
        trainer.load_state_dict(resumed.trainer_state)
    val_subset = epoch_subset(data, config.eval.epoch_subset, seed=config.seed)
    epoch_attack = attacks.build_attack(
        config.eval.epoch_attack,
        epsilon=config.epsilon,
        step_size=config.step_size,
        norm=config.threat.norm,
    )
    if trainer is not None:
        run_epochs(
            config=config,
            model=model,
            trainer=trainer,
            device=device,
            runtime=runtime,
            val_subset=val_subset,
            epoch_attack=epoch_attack,
            prep=prep,
            history=history,
            wall_s=wall_s,
            on_epoch=on_epoch,
            log=log,
        )
    if save_model is not None:
        atomic_torch_save(pruned_state_dict(model), Path(save_model))
    return final_result(
        config=config,
        model=model,
        data=data,
        device=device,
        runtime=runtime,
        prep=prep,
        history=history,
        epochs_done=trainer.epoch if trainer is not None else 0,
        wall_s=wall_s,
        val_subset=val_subset,
        epoch_attack=epoch_attack,
        log=log,
    )
