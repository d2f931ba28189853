"""The dense model: trained once per (data, model, dense recipe, threat, seed), then shared.

Or brought (`dense.checkpoint`): a state dict mapped onto our architecture
(robprune.models.checkpoints), keyed by the file's SHA-256, recorded in `meta.json`.

Stored content-addressed under `cache_dir/dense/KEY/` (layout: robprune.io.dense_cache):
`model.pt` (a plain state_dict, loadable with `weights_only=True`), `meta.json` (the recipe,
its history, and its accuracies per attack, filled in lazily), and `mrs-*.json` (MRS scores
depend only on the dense model and the estimator's settings, so they are computed once and
cached beside it, docs/architecture.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robprune.config import TrialConfig
from robprune.data import DataSplits
from robprune.io.atomic import (
    atomic_torch_save,
    atomic_write_json,
    file_lock,
    read_json,
)
from robprune.io.dense_cache import (
    DENSE_FORMAT,
    META_FILE,
    WEIGHTS_FILE,
    checkpoint_sha256,
    dense_directory,
    dense_key,
    dense_lock_path,
)
from robprune.models.checkpoints import load_state_dict_file, map_state_dict
from robprune.runtime import resolve_device, resolve_runtime, seed_everything
from robprune.trial.builders import build_model, load_trial_data, make_trainer, training_threat

__all__ = [
    "DenseModel",
    "checkpoint_sha256",
    "dense_key",
    "ensure_dense",
    "ensure_dense_for",
]


@dataclass(frozen=True, kw_only=True)
class DenseModel:
    directory: Path
    meta: dict[str, Any]

    @property
    def weights_path(self) -> Path:
        return self.directory / WEIGHTS_FILE

    def state_dict(self) -> dict[str, torch.Tensor]:
        return torch.load(self.weights_path, map_location="cpu", weights_only=True)

    def cached(self, name: str, compute) -> Any:
        """A JSON value cached beside the dense model, computed once under its lock."""
        path = self.directory / f"{name}.json"
        if path.exists():
            return read_json(path)
        with file_lock(self.directory / f".{name}.lock"):
            if path.exists():
                return read_json(path)
            value = compute()
            atomic_write_json(value, path)
            return value


def _train(
    config: TrialConfig, data: DataSplits, device: torch.device, log=print
) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    recipe = config.dense
    model = build_model(config.model, data).to(device)
    trainer = make_trainer(
        recipe,
        adversarial=training_threat(config, beta=recipe.beta, attack_bn=recipe.attack_bn),
        model=model,
        data=data,
        device=device,
        seed=config.seed,
        runtime=resolve_runtime(config.runtime, device),
    )
    history = []
    for _ in range(recipe.epochs):
        stats = trainer.run_epoch()
        history.append(
            {
                "epoch": stats.epoch,
                "lr": stats.lr,
                "train_loss": stats.train_loss,
                "wall_s": stats.wall_s,
            }
        )
        log(
            f"dense {config.model.arch}/{recipe.method} epoch {stats.epoch}/{recipe.epochs} "
            f"loss {stats.train_loss:.4f} ({stats.wall_s:.1f}s)"
        )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return state, history


def _bring(
    config: TrialConfig, data: DataSplits, log=print
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load `dense.checkpoint`, map its keys onto our architecture, check that it fits."""
    dense = config.dense
    path = str(Path(str(dense.checkpoint)).expanduser().resolve())
    model = build_model(config.model, data)
    if dense.normalize == "none":  # the brought model takes raw [0, 1] pixels
        model.normalize.mean.zero_()
        model.normalize.std.fill_(1.0)
    state, layout = map_state_dict(load_state_dict_file(path), model, config.model.arch)
    model.load_state_dict(state)
    sha = checkpoint_sha256(path)
    log(f"dense {config.model.arch}: brought {path} ({layout} layout, sha256 {sha[:12]})")
    info = {"checkpoint": path, "checkpoint_sha256": sha, "layout": layout}
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}, info


def ensure_dense(
    config: TrialConfig, data: DataSplits, device: torch.device, log=print
) -> DenseModel:
    """Find the cached dense model, or train (or bring) it; safe when several processes ask
    at once."""
    key = dense_key(config)
    directory = dense_directory(config.cache_dir, key)
    meta_path = directory / META_FILE
    if not meta_path.exists():
        with file_lock(dense_lock_path(config.cache_dir, key)):
            if not meta_path.exists() and config.dense.checkpoint is not None:
                state, info = _bring(config, data, log=log)
                atomic_torch_save(state, directory / WEIGHTS_FILE)
                meta = {"format": DENSE_FORMAT, "key": key, "config": config.to_dict(), **info}
                atomic_write_json(meta, meta_path)
            if not meta_path.exists():
                start = time.perf_counter()
                state, history = _train(config, data, device, log=log)
                atomic_torch_save(state, directory / WEIGHTS_FILE)
                meta = {
                    "format": DENSE_FORMAT,
                    "key": key,
                    "config": config.to_dict(),
                    "history": history,
                    "train_s": time.perf_counter() - start,
                }
                atomic_write_json(meta, meta_path)  # written last: marks the entry complete
    return DenseModel(directory=directory, meta=read_json(meta_path))


def ensure_dense_for(config: TrialConfig, log=print) -> DenseModel:
    """`ensure_dense` from a config alone, seeded and loaded exactly as `run_trial` does."""
    seed_everything(config.seed)
    data = load_trial_data(config.data, seed=config.seed)
    return ensure_dense(config, data, resolve_device(config.device), log=log)
