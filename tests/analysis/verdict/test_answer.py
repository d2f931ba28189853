"""The headline's answers on designs the calibration does not cover, and the report's "best"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.design.factorial import build_design
from analysis.document.build import build_report
from analysis.document.layout import blocks
from analysis.render.figures import pareto_front, pareto_mask
from analysis.render.markdown import render_markdown
from analysis.render.trial_figures import layer_profile, learning_curves
from analysis.stats import emm
from analysis.stats.shares import decompose
from analysis.verdict.paragraph import verdict
from tests.support.analysis_tables import (
    PLANTED,
    epochs_for,
    layers_for,
    planted_trials,
    write_experiment,
)
from tests.support.calibration import SIGMA, simulate


def _verdict(trials: pd.DataFrame):
    design = build_design(trials)
    y = trials["robust_acc"].to_numpy()
    return verdict(decompose(y, design, "robust_acc", resamples=60), design, "robust_acc", y)


def test_a_single_varying_factor_cannot_answer_the_question():
    """Only the criterion varies: nothing to compare it with, so no 'dominates'."""
    trials = planted_trials({"criterion": 0.2}, seeds=3)
    trials = trials[
        (trials["finetune_method"] == "ce")
        & (trials["ratio_rule"] == "uniform")
        & (trials["sparsity_target"] == 0.5)
    ].reset_index(drop=True)
    result = _verdict(trials)
    assert result.answer == "cannot" and result.dominant is None
    assert "the fine-tuning method took a single value (ce)" in result.headline
    assert "the criterion (" in result.headline
    assert "dominates" not in result.headline
    assert result.headline.endswith("No other factor varied in these trials")


def test_an_interaction_without_main_effects_is_the_answer(tmp_path):
    """The best criterion under one method is the worst under another; no main effects."""
    rng = np.random.default_rng(11)
    trials = planted_trials({}, seeds=3, rng=rng)
    ft = trials["finetune_method"].map({"ce": 1.0, "pgd_at": -1.0}).fillna(0.0).to_numpy()
    crit = trials["criterion"].map({"l1": 1.0, "l2": -1.0}).fillna(0.0).to_numpy()
    y = 0.4 + 0.05 * ft * crit + rng.normal(0, 0.02, len(trials))
    trials = trials.assign(robust_acc=y)
    report = build_report([write_experiment(tmp_path, trials)], resamples=40, draw=False)
    result = report.primary.verdict
    assert result.answer == "interaction" and result.interaction
    assert result.headline.startswith(
        "The effect of the criterion on robust accuracy depends on the fine-tuning method"
    )
    assert "under ce the criteria range from" in result.headline
    cells = result.cells
    assert cells is not None
    row = cells.set_index("fine-tuning method")
    assert row.loc["ce", "l1"] - row.loc["ce", "l2"] > 0.05
    assert row.loc["pgd_at", "l2"] - row.loc["pgd_at", "l1"] > 0.05
    markdown = render_markdown(blocks(report))
    assert "averaged over the other factors' levels (the additive model plus" in markdown


def test_trials_without_the_early_stop_headline_are_counted(tmp_path):
    """Trials that were not fine-tuned have no epochs and no validation value: left out and
    counted, and the first paragraph does not say every completed trial reached the epoch."""
    rng = np.random.default_rng(2)
    trials = planted_trials(PLANTED, seeds=2, rng=rng)
    trials["val_robust_acc"] = trials["robust_acc"]
    epochs = epochs_for(trials, epochs=4)
    first = epochs[epochs["epoch"] == 1].set_index("trial_id")["val_robust_acc"]
    cut = first < first.quantile(1 / 3)
    epochs = epochs[~(epochs["trial_id"].map(cut) & (epochs["epoch"] > 1))]
    stopped = trials["trial_id"].map(cut).to_numpy()
    trials.loc[stopped, ["robust_acc", "clean_acc", "val_robust_acc"]] = np.nan
    untuned = (trials["finetune_method"] == "mart").to_numpy()  # no epochs, no val value
    epochs = epochs[~epochs["trial_id"].isin(set(trials.loc[untuned, "trial_id"]))]
    trials.loc[untuned, "val_robust_acc"] = np.nan
    report = build_report([write_experiment(tmp_path, trials, epochs=epochs)], draw=False)
    lacking = int((untuned & stopped).sum() + (untuned & ~stopped).sum())
    assert report.adaptive.lacking == lacking
    markdown = render_markdown(blocks(report))
    summary = markdown.split("\n\n")[1]
    assert "which every completed trial reached" not in summary
    assert f"the other {lacking} have neither a per-epoch record" in summary
    assert f"{lacking} completed trials have no validation robust accuracy" in markdown


def test_every_best_is_picked_on_validation(tmp_path):
    """Validation and test disagree on the order: the figures follow the table (validation)."""
    rng = np.random.default_rng(5)
    trials = planted_trials(PLANTED, seeds=1, rng=rng)
    trials["val_robust_acc"] = rng.uniform(0.2, 0.6, len(trials))
    top = trials.nlargest(5, "val_robust_acc")["trial_id"].tolist()
    curves = learning_curves(trials, epochs_for(trials), "robust_acc")
    assert list(dict.fromkeys(curves.data["trial_id"])) == top
    assert "by validation robust accuracy" in curves.title
    layers = layer_profile(trials, layers_for(trials), "robust_acc")
    for rule, frame in layers.data.groupby(
        layers.data["trial_id"].map(trials.set_index("trial_id")["ratio_rule"])
    ):
        chosen = frame["trial_id"].iloc[0]
        of_rule = trials[trials["ratio_rule"] == rule]
        assert chosen == of_rule.loc[of_rule["val_robust_acc"].idxmax(), "trial_id"]
    trials["val_clean_acc"] = rng.uniform(0.6, 0.9, len(trials))
    front = pareto_front(trials)
    on = set(front.data.loc[front.data["on_front"], "trial_id"])
    mask = pareto_mask(trials["val_clean_acc"].to_numpy(), trials["val_robust_acc"].to_numpy())
    assert on == set(trials.loc[mask, "trial_id"])
    assert "non-dominated ones on the validation split" in front.caption
    report = build_report([write_experiment(tmp_path, trials)], resamples=20, draw=False)
    best = report.tables["best_configs"]
    assert best["trial_id"].iloc[0] == top[0]


def test_level_comparisons_state_their_multiplicity(tmp_path):
    trials = planted_trials({}, seeds=2, rng=9)
    report = build_report([write_experiment(tmp_path, trials)], resamples=20, draw=False)
    table = report.comparisons
    assert {"p_value", "p_holm"} <= set(table.columns)
    assert (table["p_holm"] >= table["p_value"] - 1e-12).all()
    markdown = render_markdown(blocks(report))
    assert "Holm-adjusted within each factor's comparisons" in markdown


def test_the_power_table_prints_sizes_without_a_sign(tmp_path):
    trials = planted_trials(PLANTED, seeds=2)
    report = build_report([write_experiment(tmp_path, trials)], resamples=20, power=True)
    markdown = render_markdown(blocks(report))
    section = markdown.split("## Power: minimum detectable effect by number of seeds")[1]
    table = section.split("\n\n")[2]
    assert "+" not in table and "| 1 |" in table


def test_the_demo_shaped_search_headlines_criterion_against_fine_tuning(tmp_path):
    """The demo's layout: one seed, 2 criteria x 2 methods x ratio rules x 2 sparsities, with
    sparsity the largest effect. The first sentence is about the question's two factors; the
    sparsity is context in the second."""
    shares = {"finetune_method": 0.3, "ratio_rule": 0.1, "sparsity_target": 0.4}
    trials = planted_trials(shares, seeds=1, rng=3)
    trials = trials[
        trials["criterion"].isin(["l1", "taylor"])
        & trials["finetune_method"].isin(["ce", "pgd_at"])
        & trials["sparsity_target"].isin([0.5, 0.9])
    ].reset_index(drop=True)
    report = build_report([write_experiment(tmp_path, trials)], resamples=40, draw=False)
    headline = report.primary.verdict.headline
    first, second = headline.split(". Of the other factors, ")
    assert "criterion" in first and "fine-tuning" in first
    assert "sparsity" not in first and "ratio rule" not in first
    assert "the sparsity (" in second
    assert "every trial has seed 0, so all share one dense model" in report.primary.verdict.text


def test_marginal_means_equal_raw_means_in_a_balanced_grid():
    trials = planted_trials(PLANTED, seeds=2, rng=1)
    design = build_design(trials)
    y = trials["robust_acc"].to_numpy()
    model = emm.fit(y, design)
    for j in range(design.k):
        raw = trials.groupby(design.codes[:, j])["robust_acc"].mean().to_numpy()
        np.testing.assert_allclose(emm.marginal_means(model, j), raw, atol=1e-10)
    assert emm.tukey_quantile(2, 30) == pytest.approx(stats.t.ppf(0.975, 30))


def test_effect_intervals_cover_the_true_spread():
    """Tukey's interval for best minus worst covers the true spread of the level means (2 SD
    for the fine-tuning method, 0 for the criterion) in at least 93% of 150 tables."""
    covered = {"finetune_method": 0, "criterion": 0}
    truth = {"finetune_method": 2 * SIGMA, "criterion": 0.0}
    for r in range(150):
        rng = np.random.default_rng(900 + r)
        trials, _ = simulate("random", {"finetune_method": 2.0}, rng)
        design = build_design(trials)
        y = trials["robust_acc"].to_numpy()
        model = emm.fit(y, design)
        found = emm.effects(y, design, model.mse, model.df_res)
        for factor, eff in zip(design.factors, found, strict=True):
            if factor.name in covered:
                covered[factor.name] += eff.lo <= truth[factor.name] <= eff.hi
    assert min(covered.values()) / 150 >= 0.93, covered


def _folded_table(delta: float, rng: np.random.Generator) -> pd.DataFrame:
    """3 methods x 4 criteria x 4 learning rates (folded into the method), 3 seeds; the last
    method is `delta` above the others whatever its learning rate."""
    import itertools

    from robprune.config.factors import FACTOR_COLUMNS

    grid = np.array(list(itertools.product(range(3), range(4), range(4))))
    codes, seeds = np.repeat(grid, 3, axis=0), np.tile(np.arange(3), len(grid))
    frame = pd.DataFrame(
        {
            "finetune_method": np.array(["ce", "pgd_at", "trades"], dtype=object)[codes[:, 0]],
            "criterion": np.array(["l1", "l2", "taylor", "fpgm"], dtype=object)[codes[:, 1]],
            "lr": np.array([1e-3, 3e-3, 1e-2, 3e-2])[codes[:, 2]],
        }
    )
    for column in FACTOR_COLUMNS:
        if column not in frame:
            frame[column] = None
    y = 0.4 + rng.normal(0, SIGMA, 3)[seeds] + delta * (codes[:, 0] == 2)
    return frame.assign(seed=seeds.astype(float), robust_acc=y + rng.normal(0, SIGMA, len(y)))


def test_the_minimum_detectable_effect_of_a_folded_factor_is_found_80_percent_of_the_time():
    """Four learning rates folded into three methods: the stated MDE is a difference between
    two methods whatever their learning rates, and such a difference is found about 80% of the
    time (150 tables; binomial SD 3.3 points), half of it far less often."""
    rng = np.random.default_rng(0)
    trials = _folded_table(0.0, rng)
    result = _verdict(trials)
    size = result.mde["finetune_method"]
    assert "between two fine-tuning method levels (each over all its learning rate" in result.text
    found = {}
    for scale in (0.5, 1.0):
        hits = 0
        for r in range(150):
            rng = np.random.default_rng(2000 + r)
            trials = _folded_table(scale * size, rng)
            design = build_design(trials)
            y = trials["robust_acc"].to_numpy()
            dec = decompose(y, design, "robust_acc", resamples=20, rng=rng, reference=False)
            j = [f.columns[0] for f in design.factors].index("finetune_method")
            hits += dec.p_adjusted[j] < 0.05
        found[scale] = hits / 150
    assert 0.70 <= found[1.0] <= 0.93, found
    assert found[0.5] <= 0.40, found
