"""Calibration of the verdict on simulated tables (docs/analysis.md has the measured rates).

Three designs with seeds as blocks sharing a per-seed offset (tests/support/calibration.py): a
balanced grid, an unbalanced random design, and the grid cut by an ASHA-like rung. Through the
analysis API, many replicates each: under the null, "distinguishable from seed noise" at most
10% of the time; with a 2-SD effect (two levels differ by twice the within-block noise) at
least 80%; and a factor without effect is never named dominant in more than 10% of the
replicates.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.calibration import DESIGNS, run_verdict, simulate

NULL_REPLICATES = 80
EFFECT_REPLICATES = 40


def _rates(design: str, effects: dict[str, float], replicates: int) -> tuple[float, float]:
    """(share of replicates called distinguishable, share naming a zero-effect factor)."""
    distinguishable = wrong = 0
    for r in range(replicates):
        rng = np.random.default_rng(1000 * len(effects) + r)
        verdict = run_verdict(*simulate(design, effects, rng), rng)
        distinguishable += verdict.distinguishable
        named = verdict.dominant.split("+")[0] if verdict.dominant else None
        wrong += named is not None and named not in effects
    return distinguishable / replicates, wrong / replicates


@pytest.mark.parametrize("design", DESIGNS)
def test_type_one_error_under_the_null(design):
    distinguishable, wrong = _rates(design, {}, NULL_REPLICATES)
    assert distinguishable <= 0.10, distinguishable
    assert wrong <= 0.10, wrong


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("factor", ["finetune_method", "criterion"])
def test_power_for_a_two_sd_effect(design, factor):
    distinguishable, wrong = _rates(design, {factor: 2.0}, EFFECT_REPLICATES)
    assert distinguishable >= 0.80, distinguishable
    assert wrong <= 0.10, wrong
