"""Simulated result tables with planted and null effects, for the analysis' calibration suite.

Three designs, each with seeds as blocks (every trial of a seed shares its dense model, drawn as
a per-seed offset) and within-block noise of SD `SIGMA`:
- "grid": a balanced grid, fine-tuning method x criterion x sparsity, every cell with every seed;
- "random": an unbalanced random design (levels and seeds drawn independently per trial);
- "asha": the grid, with the worst third of trials by validation accuracy at epoch 1 stopped
  (no test metrics), as an ASHA rung would.
An effect of size d (in SIGMA units) on a factor shifts its last level by d*SIGMA, so two of its
levels differ by d within-block noise SDs. `run_verdict` analyses one table through the
analysis API (no HTML) and returns the verdict.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from analysis.adaptive import adaptive_design
from analysis.design import build_design
from analysis.load import ResultSet
from analysis.shares import decompose
from analysis.verdict import Verdict, verdict
from robprune.config.factors import FACTOR_COLUMNS

__all__ = ["DESIGNS", "SIGMA", "simulate", "run_verdict"]

SIGMA = 0.02  # within-block noise SD (2 accuracy points)
SEED_SD = 0.02  # SD of the shared per-seed (dense-model) offset
LEVELS = {
    "finetune_method": ("ce", "pgd_at", "trades"),
    "criterion": ("l1", "l2", "taylor", "fpgm"),
    "sparsity_target": (0.5, 0.8),
}
SEEDS = 3
DESIGNS = ("grid", "random", "asha")


def _codes(design: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    names = list(LEVELS)
    if design == "random":
        n = 72
        codes = np.column_stack([rng.integers(0, len(LEVELS[f]), n) for f in names])
        return codes, rng.integers(0, SEEDS, n)
    grid = np.array(list(itertools.product(*(range(len(LEVELS[f])) for f in names))))
    return np.repeat(grid, SEEDS, axis=0), np.tile(np.arange(SEEDS), len(grid))


def simulate(
    design: str, effects: dict[str, float], rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(trials, epochs) of one simulated experiment; `effects` in SIGMA units per factor."""
    codes, seeds = _codes(design, rng)
    names = list(LEVELS)
    offset = rng.normal(0.0, SEED_SD, SEEDS)[seeds]
    mean = 0.4 + offset
    for j, name in enumerate(names):
        mean = mean + effects.get(name, 0.0) * SIGMA * (codes[:, j] == len(LEVELS[name]) - 1)
    n = len(codes)
    trials = pd.DataFrame(
        {name: np.array(LEVELS[name], dtype=object)[codes[:, j]] for j, name in enumerate(names)}
    )
    trials["sparsity_target"] = trials["sparsity_target"].astype(float)
    for column in FACTOR_COLUMNS:
        if column not in trials:
            trials[column] = None
    trials = trials.assign(
        experiment="sim",
        trial_id=[f"t{i}" for i in range(n)],
        status="TERMINATED",
        seed=seeds.astype(float),
        robust_acc=mean + rng.normal(0.0, SIGMA, n),
    )
    trials["val_robust_acc"] = trials["robust_acc"] + rng.normal(0.0, SIGMA / 2, n)
    if design != "asha":
        return trials, None
    early = trials["val_robust_acc"].to_numpy() + rng.normal(0.0, SIGMA, n)
    epochs = pd.DataFrame(
        {
            "experiment": "sim",
            "trial_id": np.repeat(trials["trial_id"].to_numpy(), 2),
            "epoch": np.tile([1, 2], n),
            "robust_acc": np.column_stack([early, trials["val_robust_acc"]]).ravel(),
        }
    )
    stopped = early < np.quantile(early, 1 / 3)
    epochs = epochs[~(np.repeat(stopped, 2) & (epochs["epoch"] == 2).to_numpy())]
    trials.loc[stopped, ["robust_acc", "val_robust_acc"]] = np.nan
    return trials, epochs.reset_index(drop=True)


def run_verdict(
    trials: pd.DataFrame, epochs: pd.DataFrame | None, rng: np.random.Generator
) -> Verdict:
    """The verdict the report would headline, through the analysis API."""
    response = "robust_acc"
    if epochs is not None:
        results = ResultSet(trials=trials, ok=trials, epochs=epochs, layers=None, sources=[])
        adaptive = adaptive_design(results, response)
        assert adaptive.response is not None and adaptive.trials is not None
        trials, response = adaptive.trials, adaptive.response
    design = build_design(trials)
    y = trials[response].to_numpy(dtype=float)
    dec = decompose(y, design, response, resamples=40, rng=rng, reference=False)
    return verdict(dec, design, response)
