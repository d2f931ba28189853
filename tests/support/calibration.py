"""Simulated result tables with planted and null effects, for the analysis' calibration suite.

Designs, each with seeds as blocks (every trial of a seed shares its dense model, drawn as a
per-seed offset) and within-block noise of SD `SIGMA`:
- "grid": a balanced grid, fine-tuning method x criterion x sparsity, every cell with every seed;
- "random": an unbalanced random design (levels and seeds drawn independently per trial);
- "asha": the grid, with the worst third of trials by validation accuracy at epoch 1 stopped
  (no test metrics), as an ASHA rung would; the analysis then reads validation accuracy at
  epoch 1, whose noise SD is 1.5 `SIGMA`;
- "failures": the grid with 60% of the trials of one criterion (l2, a level without planted
  effect) failed, so the remaining table is unbalanced and the losses sit in one level;
- "one_seed": every trial with seed 0 (one dense model, no block), three trials per cell (as
  many trials as the grid);
- "heavy": the grid with Student-t noise (3 df) scaled to SD `SIGMA`;
- "floor": accuracies near 0 (mean 3 points), clipped at 0 as accuracies are.
Every design has 72 trials before its losses (an equal budget). Effect sizes are in SDs of
the noise of the response the analysis reads (`NOISE_SD` x `SIGMA`: `SIGMA` except after the
ASHA cut). An effect of size d on a factor shifts its last level by d such SDs, so two of its
levels differ by d noise SDs. An interaction of size d ("interaction" key) moves the last
criterion by +d SDs under the last fine-tuning method and by -d SDs under the first, with no
main effect: within one method two criteria differ by d SDs, reversed in the other.
`run_verdict` analyses one table through the analysis API (no HTML).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from analysis.design.adaptive import adaptive_design
from analysis.design.factorial import build_design
from analysis.read.load import ResultSet
from analysis.stats.shares import decompose
from analysis.verdict.paragraph import Verdict, verdict
from robprune.config.factors import FACTOR_COLUMNS

__all__ = [
    "DESIGNS",
    "NOISE_SD",
    "RIGHT",
    "SCENARIOS",
    "SIGMA",
    "false_claim",
    "is_right",
    "is_wrong",
    "missed_interaction",
    "run_verdict",
    "simulate",
]

SIGMA = 0.02  # within-block noise SD (2 accuracy points)
SEED_SD = 0.02  # SD of the shared per-seed (dense-model) offset
LEVELS = {
    "finetune_method": ("ce", "pgd_at", "trades"),
    "criterion": ("l1", "l2", "taylor", "fpgm"),
    "sparsity_target": (0.5, 0.8),
}
SEEDS = 3
#: Noise SD of the response each design's analysis reads, in SIGMA units: after the ASHA cut the
#: headline is validation accuracy at epoch 1 (test noise, validation noise SIGMA/2 and the
#: epoch-1 noise SIGMA: sqrt(1 + 1/4 + 1) = 1.5).
NOISE_SD = {"asha": 1.5}
DESIGNS = ("grid", "random", "asha", "failures", "one_seed", "heavy", "floor")
#: Planted effects per scenario, in SIGMA units ("interaction": fine-tuning x criterion).
SCENARIOS = {
    "null": {},
    "criterion +2 SD": {"criterion": 2.0},
    "fine-tuning +2 SD": {"finetune_method": 2.0},
    # the criterion's 4 levels spread a shift over less variance than the method's 3: 2.18 SD
    # gives both the same share, so "neither dominates" is the true answer
    "both +2 SD": {"finetune_method": 2.0, "criterion": 2.0 * np.sqrt((2 / 9) / (3 / 16))},
    "interaction 2 SD": {"interaction": 2.0},
    # four times the criterion's share: a clear case of dominance
    "fine-tuning +4 SD, criterion +2 SD": {"finetune_method": 4.0, "criterion": 2.0},
}
#: The answer a scenario should get.
RIGHT = {
    "null": "neither",
    "criterion +2 SD": "only_criterion",
    "fine-tuning +2 SD": "only_finetune",
    "both +2 SD": "both",
    "interaction 2 SD": "interaction",
    "fine-tuning +4 SD, criterion +2 SD": "finetune_dominates",
}


def _codes(design: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    names = list(LEVELS)
    if design == "random":
        n = 72
        codes = np.column_stack([rng.integers(0, len(LEVELS[f]), n) for f in names])
        return codes, rng.integers(0, SEEDS, n)
    grid = np.array(list(itertools.product(*(range(len(LEVELS[f])) for f in names))))
    if design == "one_seed":
        return np.repeat(grid, SEEDS, axis=0), np.zeros(SEEDS * len(grid), dtype=np.int64)
    return np.repeat(grid, SEEDS, axis=0), np.tile(np.arange(SEEDS), len(grid))


def _noise(design: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if design == "heavy":
        return SIGMA * rng.standard_t(3, n) / np.sqrt(3.0)  # t(3) has variance 3
    return rng.normal(0.0, SIGMA, n)


def simulate(
    design: str, effects: dict[str, float], rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(trials, epochs) of one simulated experiment; `effects` in SIGMA units per factor."""
    codes, seeds = _codes(design, rng)
    names = list(LEVELS)
    offset = rng.normal(0.0, SEED_SD, SEEDS)[seeds]
    mean = (0.03 if design == "floor" else 0.4) + offset * (design != "floor")
    sd = NOISE_SD.get(design, 1.0) * SIGMA
    for j, name in enumerate(names):
        mean = mean + effects.get(name, 0.0) * sd * (codes[:, j] == len(LEVELS[name]) - 1)
    if "interaction" in effects:
        f, c = codes[:, 0], codes[:, 1]
        sign = np.where(f == len(LEVELS["finetune_method"]) - 1, 1.0, np.where(f == 0, -1.0, 0))
        last = (c == len(LEVELS["criterion"]) - 1).astype(float) - 1.0 / len(LEVELS["criterion"])
        mean = mean + effects["interaction"] * sd * sign * last
    n = len(codes)
    trials = pd.DataFrame(
        {name: np.array(LEVELS[name], dtype=object)[codes[:, j]] for j, name in enumerate(names)}
    )
    trials["sparsity_target"] = trials["sparsity_target"].astype(float)
    for column in FACTOR_COLUMNS:
        if column not in trials:
            trials[column] = None
    robust = mean + _noise(design, n, rng)
    if design == "floor":
        robust = np.clip(robust, 0.0, 1.0)
    trials = trials.assign(
        experiment="sim",
        trial_id=[f"t{i}" for i in range(n)],
        status="TERMINATED",
        seed=seeds.astype(float),
        robust_acc=robust,
    )
    trials["val_robust_acc"] = trials["robust_acc"] + rng.normal(0.0, SIGMA / 2, n)
    if design == "failures":
        level = np.flatnonzero(trials["criterion"].to_numpy() == "l2")
        failed = rng.choice(level, size=int(0.6 * len(level)), replace=False)
        trials = trials.drop(index=failed).reset_index(drop=True)
    if design != "asha":
        return trials, None
    early = trials["val_robust_acc"].to_numpy() + rng.normal(0.0, SIGMA, n)
    epochs = pd.DataFrame(
        {
            "experiment": "sim",
            "trial_id": np.repeat(trials["trial_id"].to_numpy(), 2),
            "epoch": np.tile([1, 2], n),
            "val_robust_acc": np.column_stack([early, trials["val_robust_acc"]]).ravel(),
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
    return verdict(dec, design, response, y)


def false_claim(result: Verdict, effects: dict[str, float]) -> bool:
    """A factor with no planted effect named as mattering or dominating, or an interaction
    named where none was planted."""
    named = set(result.matters) | ({result.dominant} if result.dominant else set())
    if named - set(effects):
        return True
    return result.interaction and not effects.get("interaction", 0.0)


def missed_interaction(result: Verdict, effects: dict[str, float]) -> bool:
    """A planted interaction of 2 SD or more not reported."""
    return effects.get("interaction", 0.0) >= 2.0 and not result.interaction


def is_wrong(result: Verdict, effects: dict[str, float]) -> bool:
    """Either kind of wrong answer."""
    return false_claim(result, effects) or missed_interaction(result, effects)


def is_right(result: Verdict, scenario: str) -> bool:
    return result.answer == RIGHT[scenario]
