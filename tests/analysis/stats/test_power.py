"""The minimum detectable interaction the verdict states is found as often as it says."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from analysis.design.factorial import build_design
from analysis.stats.power import interaction_mde
from analysis.stats.shares import decompose
from analysis.verdict.paragraph import tested_alpha as holm_first_step
from analysis.verdict.paragraph import verdict
from robprune.config.factors import FACTOR_COLUMNS
from tests.support.calibration import SIGMA

METHODS = np.array(["ce", "pgd_at", "trades"], dtype=object)
CRITERIA = np.array(["l1", "l2", "taylor"], dtype=object)
#: the least detectable interaction with contrast delta: +-delta/4 on four cells
PATTERN = {(0, 0): 0.25, (0, 1): -0.25, (1, 0): -0.25, (1, 1): 0.25}


def _table(delta: float, rng: np.random.Generator, seeds: int = 3) -> pd.DataFrame:
    """3 methods x 3 criteria x 2 sparsities, `seeds` dense models; switching from the first
    method to the second changes accuracy by `delta` more under the first criterion than
    under the second (no main effects)."""
    grid = np.array(list(itertools.product(range(3), range(3), range(2))))
    codes, seed = np.repeat(grid, seeds, axis=0), np.tile(np.arange(seeds), len(grid))
    frame = pd.DataFrame(
        {
            "finetune_method": METHODS[codes[:, 0]],
            "criterion": CRITERIA[codes[:, 1]],
            "sparsity_target": np.array([0.5, 0.9])[codes[:, 2]],
        }
    )
    for column in FACTOR_COLUMNS:
        if column not in frame:
            frame[column] = None
    planted = np.array([PATTERN.get((m, c), 0.0) for m, c in codes[:, :2]]) * delta
    y = 0.4 + rng.normal(0, SIGMA, seeds)[seed] + planted + rng.normal(0, SIGMA, len(codes))
    return frame.assign(seed=seed.astype(float), robust_acc=y)


def _decide(trials: pd.DataFrame, rng: np.random.Generator):
    design = build_design(trials)
    y = trials["robust_acc"].to_numpy()
    dec = decompose(y, design, "robust_acc", resamples=20, rng=rng, reference=False)
    return dec, design, y


def test_the_stated_interaction_mde_is_found_at_least_80_percent_of_the_time():
    """The verdict states the MDE at its estimate of the noise; at the true noise that size is
    found by the interaction's Holm-adjusted test in at least about 80% of 150 tables
    (binomial SD about 3 points; more, since the MDE takes Holm's first step), half of it
    far less often."""
    dec, design, y = _decide(_table(0.0, np.random.default_rng(0)), np.random.default_rng(0))
    text = verdict(dec, design, "robust_acc", y).text
    assert "an interaction would be detected at least 80% of the time" in text
    stated = float(text.split("robust accuracy by ")[1].split(" points")[0]) / 100
    cells = np.full((3, 3), 6)  # 2 sparsities x 3 seeds in each method-criterion cell
    alpha = holm_first_step(dec)
    assert stated == pytest.approx(
        interaction_mde(cells, dec.noise_var, dec.df_res, alpha, df1=4), abs=5e-4
    )
    size = interaction_mde(cells, SIGMA**2, dec.df_res, alpha, df1=4)
    found = {}
    for scale in (0.5, 1.0):
        hits = 0
        for r in range(150):
            rng = np.random.default_rng(5000 + r)
            dec, _, _ = _decide(_table(scale * size, rng), rng)
            assert dec.pair is not None
            hits += dec.pair.p_adjusted < 0.05
        found[scale] = hits / 150
    assert 0.72 <= found[1.0] <= 0.97, found
    assert found[0.5] <= 0.40, found
