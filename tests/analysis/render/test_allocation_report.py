"""The report covers every ratio rule in the data: the ratio-rule table and the layer figure."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.render import figures, trial_figures
from analysis.stats.effects import ratio_rule_effect
from tests.support.analysis_tables import layers_for, planted_trials

RULES = ("uniform", "mrs", "mrs_band", "mrs_zscore")


def _four_rules() -> tuple[pd.DataFrame, pd.DataFrame]:
    trials = planted_trials({"finetune_method": 0.5}, seeds=1)
    trials["ratio_rule"] = np.resize(np.array(RULES, dtype=object), len(trials))
    layers = layers_for(trials)
    return trials, layers


def test_ratio_rule_table_has_every_rule_against_uniform_with_intervals():
    trials, _ = _four_rules()
    table = ratio_rule_effect(trials, "robust_acc")
    assert set(table["rule"]) == set(RULES) - {"uniform"}
    assert table["diff_lo"].notna().all() and (table["diff_lo"] <= table["diff_hi"]).all()


def test_layer_figure_shows_the_best_trial_of_every_rule():
    trials, layers = _four_rules()
    fig = trial_figures.layer_profile(trials, layers, "robust_acc")
    assert isinstance(fig, figures.Figure) and len(fig.png) > 5000
    shown = trials.set_index("trial_id").loc[fig.data["trial_id"].unique(), "ratio_rule"]
    assert sorted(shown) == sorted(RULES)
    for rule in RULES:  # each panel is that rule's best trial
        best = trials[trials["ratio_rule"] == rule].sort_values("robust_acc").iloc[-1]
        assert best["trial_id"] in set(fig.data["trial_id"])


def test_tensorboard_accepts_string_factors_null_in_some_trials(tmp_path):
    from search.results.tensorboard import write_tensorboard

    base = {"status": "TERMINATED", "robust_acc": 0.3, "epochs_completed": 0}
    trials = [
        {**base, "trial_id": "a", "ratio_rule": "uniform", "mrs_estimator": None},
        {**base, "trial_id": "b", "ratio_rule": "mrs_band", "mrs_estimator": "prune_damage"},
    ]
    out = write_tensorboard(trials, [], tmp_path / "tb")
    assert {p.name for p in out.iterdir()} == {"a", "b"}
