"""Effects read off the trials: the paper's view and ratio rules against uniform."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.design.estimable import NotEstimable
from analysis.stats.effects import paper_view, ratio_rule_effect
from tests.support.analysis_tables import (
    PLANTED,
    planted_trials,
)


def test_paper_view_compares_spreads():
    trials = planted_trials(PLANTED, seeds=2)
    view = paper_view(trials, "robust_acc")
    assert set(view.table["within"]) == {"fine-tuning method", "criterion"}
    within_method = view.table[view.table["within"] == "fine-tuning method"]["spread"].mean()
    within_criterion = view.table[view.table["within"] == "criterion"]["spread"].mean()
    assert within_criterion > 2 * within_method
    assert "Within a fine-tuning method, the criteria differ by" in view.summary
    single = paper_view(trials[trials["criterion"] == "l1"], "robust_acc")
    assert isinstance(single, NotEstimable) and "criterion takes a single value" in single.reason


def _ratio_table(
    rng: np.random.Generator, shifts: dict[str, float], per_rule: int = 4
) -> pd.DataFrame:
    """Uniform allocation plus rules better by `shifts`, at three sparsities; those rules are
    twice as noisy as uniform."""
    rows = []
    for sparsity in (0.5, 0.7, 0.9):
        for rule, shift in {"uniform": 0.0, **shifts}.items():
            sd = 0.02 if rule == "uniform" else 0.04
            for value in 0.4 + shift + rng.normal(0.0, sd, per_rule):
                rows.append(
                    {
                        "ratio_rule": rule,
                        "sparsity_target": sparsity,
                        "achieved_sparsity": sparsity,
                        "robust_acc": value,
                    }
                )
    return pd.DataFrame(rows)


def test_ratio_rule_interval_covers_a_planted_difference():
    """Welch intervals of MRS - uniform: right sign, ~95% coverage, t-sized (not z) width."""
    truth, per_rule = 0.03, 4
    hits, widths = [], []
    for i in range(100):
        trials = _ratio_table(np.random.default_rng(i), {"mrs": truth}, per_rule)
        table = ratio_rule_effect(trials, "robust_acc")
        assert list(table["sparsity"]) == ["0.5", "0.7", "0.9"]
        assert (table["rule"] == "mrs").all()
        assert (table[["n_uniform", "n_rule"]] == per_rule).all().all()
        hits += list((table["diff_lo"] <= truth) & (truth <= table["diff_hi"]))
        widths += list(table["diff_hi"] - table["diff_lo"])
    se = np.sqrt((0.02**2 + 0.04**2) / per_rule)
    expected = 2 * stats.t.ppf(0.975, 2 * per_rule - 2) * se  # 0.109; a z interval: 0.088
    assert 0.92 <= np.mean(hits) <= 0.98, np.mean(hits)
    assert 0.9 * expected <= np.mean(widths) <= 1.2 * expected, np.mean(widths)
    one_rule = _ratio_table(np.random.default_rng(0), {"mrs": truth}).query("ratio_rule == 'mrs'")
    assert isinstance(ratio_rule_effect(one_rule, "robust_acc"), NotEstimable)


def test_ratio_rule_effect_compares_every_rule_with_uniform():
    shifts = {"mrs": 0.03, "mrs_band": -0.05}
    trials = _ratio_table(np.random.default_rng(7), shifts, per_rule=40)
    table = ratio_rule_effect(trials, "robust_acc")
    assert list(table["rule"]) == ["mrs"] * 3 + ["mrs_band"] * 3
    for rule, truth in shifts.items():
        rows = table[table["rule"] == rule]
        assert ((rows["diff_lo"] <= truth) & (truth <= rows["diff_hi"])).all(), rule
        assert (np.sign(rows["diff_lo"]) == np.sign(truth)).all()  # each clearly signed
        assert (np.sign(rows["diff_hi"]) == np.sign(truth)).all()
