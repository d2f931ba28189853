"""Result tables with planted effects, for the analysis tests and the report benchmark.

The robust accuracy is base + sum of factor effects + seed noise, where each factor's effects
are fixed, centred and scaled so that the factor explains exactly `shares[factor]` of the
population variance (levels equally likely); the noise takes the rest.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from robprune.io.results_schema import (
    EPOCHS_SCHEMA,
    LAYERS_SCHEMA,
    TRIALS_SCHEMA,
    write_table_atomic,
)

__all__ = [
    "LEVELS",
    "PLANTED",
    "planted_trials",
    "epochs_for",
    "layers_for",
    "write_experiment",
    "write_raw_trials",
]

LEVELS: dict[str, tuple] = {
    "finetune_method": ("ce", "pgd_at", "trades", "mart"),
    "criterion": ("random", "l1", "l2", "taylor", "fpgm"),
    "ratio_rule": ("uniform", "mrs"),
    "sparsity_target": (0.5, 0.7, 0.9),
}
#: The shares most tests plant: fine-tuning dominates, the criterion is small but real.
PLANTED = {"finetune_method": 0.60, "criterion": 0.05}
SCALE = 0.08  # total SD of the response: 8 accuracy points
BASE = 0.40


def _effects(levels: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Centred level effects whose mean square is share * SCALE^2 (exactly)."""
    if share <= 0:
        return np.zeros(levels)
    raw = rng.permutation(np.linspace(-1.0, 1.0, levels))
    raw = raw - raw.mean()
    return raw * np.sqrt(share * SCALE**2 / np.mean(raw**2))


def planted_trials(
    shares: dict[str, float],
    *,
    balanced: bool = True,
    seeds: int = 3,
    n: int = 600,
    rng: np.random.Generator | int = 0,
    experiment: str = "planted",
    failed: int = 0,
    search: bool = False,
) -> pd.DataFrame:
    """A trials table (TRIALS_SCHEMA columns) with known variance shares of robust_acc.

    `search=True` also samples lr, epochs, MRS temperature and beta continuously, as a search
    would (they have no effect on the response).
    """
    rng = np.random.default_rng(rng)
    names = list(LEVELS)
    effects = {f: _effects(len(LEVELS[f]), shares.get(f, 0.0), rng) for f in names}
    if balanced:
        grid = list(itertools.product(*(range(len(LEVELS[f])) for f in names)))
        codes = np.repeat(np.array(grid), seeds, axis=0)
        seed_col = np.tile(np.arange(seeds), len(grid))
    else:
        codes = np.column_stack([rng.integers(0, len(LEVELS[f]), n) for f in names])
        seed_col = rng.integers(0, 3, len(codes))
    noise_sd = SCALE * np.sqrt(max(1.0 - sum(shares.values()), 0.0))
    robust = BASE + sum(effects[f][codes[:, j]] for j, f in enumerate(names))
    robust = robust + rng.normal(0.0, noise_sd, len(codes))
    count = len(codes)
    frame = pd.DataFrame(
        {f: np.array(LEVELS[f], dtype=object)[codes[:, j]] for j, f in enumerate(names)}
    )
    frame["sparsity_target"] = frame["sparsity_target"].astype(float)
    mrs = frame["ratio_rule"] == "mrs"
    uses_beta = frame["finetune_method"].isin(["trades", "mart"])
    sparsity = frame["sparsity_target"].to_numpy()
    frame = frame.assign(
        experiment=experiment,
        trial_id=[f"t{i:06d}" for i in range(count)],
        status="TERMINATED",
        error=None,
        seed=seed_col.astype(np.int64),
        dataset="digits",
        arch="small_cnn",
        temperature=np.where(mrs, 1.0, np.nan),
        finetune_epochs=np.int64(10),
        lr=0.01,
        schedule="cosine",
        beta=np.where(uses_beta, 6.0, np.nan),
        config_json="{}",
        robust_acc=robust,
        clean_acc=np.clip(robust + 0.35 + rng.normal(0, 0.02, count), 0, 1),
        fgsm_acc=robust + 0.05,
        pgd_acc=robust,
        params=(100_000 * (1 - sparsity)).astype(np.int64),
        params_dense=np.int64(100_000),
        flops=(5_000_000 * (1 - sparsity) ** 1.5).astype(np.int64),
        flops_dense=np.int64(5_000_000),
        achieved_sparsity=sparsity + rng.normal(0, 0.005, count),
        epochs_completed=np.int64(10),
        dense_clean_acc=0.95,
        dense_robust_acc=0.5,
        wall_s=rng.uniform(10, 20, count),
        attack_config_json="{}",
        robprune_version="0.1.0",
    )
    if search:
        frame["lr"] = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), count))
        frame["finetune_epochs"] = rng.integers(5, 61, count).astype(np.int64)
        frame["temperature"] = np.where(mrs, np.exp(rng.uniform(-3, 3, count)), np.nan)
        frame["beta"] = np.where(uses_beta, rng.uniform(1, 8, count), np.nan)
    if failed:
        bad = rng.choice(count, size=failed, replace=False)
        frame.loc[bad, "status"] = "ERROR"
        frame.loc[bad, "error"] = "RuntimeError: CUDA out of memory"
        frame.loc[bad, ["robust_acc", "clean_acc"]] = np.nan
    for name in TRIALS_SCHEMA.names:
        if name not in frame:
            frame[name] = None
    return frame[TRIALS_SCHEMA.names]


def epochs_for(trials: pd.DataFrame, epochs: int = 8, limit: int | None = None) -> pd.DataFrame:
    """Learning curves that rise towards each trial's final accuracies."""
    rows = trials if limit is None else trials.head(limit)
    e = np.arange(1, epochs + 1)
    frac = 1 - np.exp(-e / 2.5)
    n = len(rows)
    return pd.DataFrame(
        {
            "experiment": np.repeat(rows["experiment"].to_numpy(), epochs),
            "trial_id": np.repeat(rows["trial_id"].to_numpy(), epochs),
            "epoch": np.tile(e, n).astype(np.int64),
            "lr": np.tile(0.01 * (1 + np.cos(np.pi * e / epochs)) / 2, n),
            "train_loss": np.tile(2.0 - 1.2 * frac, n),
            "val_clean_acc": np.outer(rows["clean_acc"].fillna(0).to_numpy(), frac).ravel(),
            "val_robust_acc": np.outer(rows["robust_acc"].fillna(0).to_numpy(), frac).ravel(),
            "wall_s": np.tile(e * 1.5, n),
        }
    )


def layers_for(trials: pd.DataFrame, layers: int = 5, limit: int | None = None) -> pd.DataFrame:
    """Per-layer MRS and ratios; MRS is null under the uniform rule."""
    rows = trials if limit is None else trials.head(limit)
    n = len(rows)
    rng = np.random.default_rng(1)
    mrs = rng.gamma(2.0, 1.0, (n, layers))
    uniform = (rows["ratio_rule"] == "uniform").to_numpy()[:, None]
    sparsity = rows["sparsity_target"].to_numpy()[:, None]
    ratio = np.where(uniform, sparsity, np.clip(sparsity * 1.6 / (1 + mrs / 2), 0, 0.9))
    before = np.tile(np.array([32, 64, 64, 128, 128]), (n, 1))[:, :layers]
    after = np.round(before * (1 - ratio)).astype(np.int64)
    return pd.DataFrame(
        {
            "experiment": np.repeat(rows["experiment"].to_numpy(), layers),
            "trial_id": np.repeat(rows["trial_id"].to_numpy(), layers),
            "layer": np.tile([f"features.{i}" for i in range(layers)], n),
            "mrs": np.where(uniform, np.nan, mrs).ravel(),
            "ratio": ratio.ravel(),
            "ratio_planned": ratio.ravel(),
            "mrs_first_order": np.where(uniform, np.nan, mrs).ravel(),
            "mrs_ascent": np.full(n * layers, np.nan),
            "mrs_prune_damage": np.full(n * layers, np.nan),
            "channels_before": before.ravel(),
            "channels_after": after.ravel(),
            "params_before": (before * 9 * 16).ravel(),
            "params_after": (after * 9 * 16).ravel(),
            "bn_recalibration": np.full(n * layers, 10),
        }
    )


def _table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def write_experiment(
    root: Path,
    trials: pd.DataFrame,
    *,
    epochs: pd.DataFrame | None = None,
    layers: pd.DataFrame | None = None,
) -> Path:
    """Write EXPERIMENT/results/{trials,epochs,layers}.parquet; returns the results dir."""
    results = Path(root) / "results"
    write_table_atomic(_table(trials, TRIALS_SCHEMA), results / "trials.parquet")
    if epochs is not None:
        write_table_atomic(_table(epochs, EPOCHS_SCHEMA), results / "epochs.parquet")
    if layers is not None:
        write_table_atomic(_table(layers, LAYERS_SCHEMA), results / "layers.parquet")
    return results


def write_raw_trials(root: Path, frame: pd.DataFrame) -> Path:
    """Write `frame` as ROOT/results/trials.parquet with whatever types it has (bad inputs)."""
    path = Path(root) / "results" / "trials.parquet"
    write_table_atomic(pa.Table.from_pandas(frame, preserve_index=False), path)
    return path.parent
