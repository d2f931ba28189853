"""Blocks, folded and aliased factors, repeated levels and paired comparisons (analysis/)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.design.factorial import build_design
from analysis.design.identical import drop_identical_levels
from analysis.stats.effects import ratio_rule_effect
from analysis.stats.shares import decompose
from analysis.verdict.paragraph import verdict
from tests.support.analysis_tables import PLANTED, planted_trials


def _with_none(rng: np.random.Generator) -> pd.DataFrame:
    """Fine-tuning none vs pgd_at (+0.1); the recipe is null under none; lr has no effect."""
    trials = planted_trials({}, seeds=3, rng=rng)
    trials = trials[trials["ratio_rule"] == "uniform"].reset_index(drop=True)
    none = trials["finetune_method"].isin(["ce", "pgd_at"]).to_numpy()
    trials["finetune_method"] = np.where(none, "none", "pgd_at")
    trials["lr"] = np.where(none, np.nan, rng.choice([0.01, 0.1], len(trials)))
    trials.loc[none, ["finetune_epochs", "schedule", "beta"]] = [np.nan, None, np.nan]
    trials["robust_acc"] = 0.4 + 0.1 * (~none) + rng.normal(0, 0.02, len(trials))
    return trials


def test_learning_rate_is_folded_into_the_method_not_aliased_with_none():
    trials = _with_none(np.random.default_rng(0))
    design = build_design(trials)
    names = [f.name for f in design.factors]
    assert "lr" not in names
    method = next(f for f in design.factors if f.columns[0] == "finetune_method")
    assert "lr" in method.columns and "none" in method.levels
    dec = decompose(trials["robust_acc"].to_numpy(), design, "robust_acc", resamples=60)
    share = dict(zip(dec.factors, dec.shares, strict=True))
    assert share[method.name] > 0.8  # the whole none-vs-pgd_at effect, not half of it


def test_columns_that_coincide_are_named_and_merged():
    trials = planted_trials(PLANTED, seeds=2)
    trials = trials[trials["ratio_rule"] == "uniform"].reset_index(drop=True)
    # sparsity follows the criterion level for level: the two cannot be told apart
    trials["sparsity_target"] = trials["criterion"].map(
        {"random": 0.1, "l1": 0.3, "l2": 0.5, "taylor": 0.7, "fpgm": 0.9}
    )
    design = build_design(trials)
    names = [f.name for f in design.factors]
    assert "criterion+sparsity_target" in names
    note = next(n for n in design.notes if "cannot be told apart" in n)
    assert note.startswith("criterion and sparsity cannot be told apart on these trials")


def test_seeds_shared_across_cells_are_blocks_with_their_own_line():
    rng = np.random.default_rng(3)
    trials = planted_trials(PLANTED, seeds=3, rng=rng)
    offsets = np.array([-0.04, 0.0, 0.04])
    trials["robust_acc"] += offsets[trials["seed"].to_numpy()]
    design = build_design(trials)
    assert design.block is not None and design.block.levels == ("0", "1", "2")
    dec = decompose(trials["robust_acc"].to_numpy(), design, "robust_acc", resamples=60)
    assert dec.method == "anova" and dec.block is not None
    assert dec.block.share > 0.05 and dec.block.p_value < 1e-6
    # the noise floor is the within-block residual: the offsets are not in it
    assert np.sqrt(dec.noise_var) < 0.08 * 0.7
    text = verdict(dec, design, "robust_acc", trials["robust_acc"].to_numpy()).text
    assert "Dense-model variation (trials sharing a seed share a dense model; 3 seeds" in text
    unique = trials.assign(seed=np.arange(len(trials)))  # no seed shared: no block
    assert build_design(unique).block is None


def test_lamp_under_per_layer_ratios_repeats_l2_and_is_left_out():
    trials = planted_trials(PLANTED, seeds=1)
    lamp = trials[trials["criterion"] == "l2"].assign(criterion="lamp")
    merged = pd.concat([trials, lamp.assign(trial_id=lamp["trial_id"] + "x")], ignore_index=True)
    kept, notes = drop_identical_levels(merged)
    assert "lamp" not in set(kept["criterion"]) and len(kept) == len(trials)
    assert any("'lamp' keeps exactly the channels 'l2' keeps" in n for n in notes)


def test_levels_with_identical_numbers_on_matched_trials_are_left_out():
    trials = planted_trials(PLANTED, seeds=2)
    trials = trials[trials["criterion"] != "taylor"]
    copy = trials[trials["criterion"] == "fpgm"].assign(criterion="taylor")
    merged = pd.concat([trials, copy.assign(trial_id=copy["trial_id"] + "x")], ignore_index=True)
    kept, notes = drop_identical_levels(merged)
    assert "taylor" not in set(kept["criterion"])
    assert any("'taylor' gave exactly the numbers of 'fpgm'" in n for n in notes)
    untouched, none = drop_identical_levels(trials)
    assert len(untouched) == len(trials) and none == []


def test_ratio_rule_comparison_is_paired_within_seed_blocks():
    """A per-seed offset as large as the effect: the paired interval excludes 0, and says so."""
    rng = np.random.default_rng(5)
    trials = planted_trials({}, seeds=6, rng=rng)
    trials = trials[(trials["criterion"] == "l1") & (trials["finetune_method"] == "ce")]
    offsets = rng.normal(0, 0.05, 6)
    mrs = (trials["ratio_rule"] == "mrs").to_numpy()
    trials = trials.assign(
        robust_acc=0.4 + 0.03 * mrs + offsets[trials["seed"]] + rng.normal(0, 0.005, len(trials))
    )
    table = ratio_rule_effect(trials, "robust_acc")
    assert (table["pairs"] == 6).all()
    assert table["comparison"].str.startswith("paired within seed blocks").all()
    assert ((table["diff_lo"] > 0) & (table["diff_lo"] < 0.03) & (table["diff_hi"] > 0.03)).all()


def _noise_text(trials: pd.DataFrame) -> tuple[str, object]:
    design = build_design(trials)
    y = trials["robust_acc"].to_numpy()
    dec = decompose(y, design, "robust_acc", resamples=40)
    return verdict(dec, design, "robust_acc", y).text, dec


def test_the_noise_sentence_is_true_for_every_seed_layout():
    trials = planted_trials(PLANTED, seeds=1)
    one_seed, _ = _noise_text(trials)
    assert "every trial has seed 0, so all share one dense model" in one_seed
    assert "no seed is shared" not in one_seed
    no_column, _ = _noise_text(trials.drop(columns=["seed"]))
    assert "the trials record no seed" in no_column
    unique, _ = _noise_text(trials.assign(seed=np.arange(len(trials))))
    assert "no seed is shared by trials of different configurations" in unique


def test_a_null_seed_leaves_that_trial_out_not_every_block(tmp_path):
    from analysis.document.build import build_report
    from tests.support.analysis_tables import write_experiment

    trials = planted_trials(PLANTED, seeds=3, rng=4)
    trials["robust_acc"] += np.array([-0.04, 0.0, 0.04])[trials["seed"].to_numpy()]
    trials["seed"] = trials["seed"].astype("float")
    trials.loc[5, "seed"] = np.nan
    report = build_report([write_experiment(tmp_path, trials)], resamples=40, draw=False)
    assert report.primary.unseeded == 1 and len(report.primary.trials) == len(trials) - 1
    assert report.primary.design.block is not None
    assert any("1 trials record no seed" in line for line in report.skipped)
    excluded = report.tables["excluded"]
    assert excluded["reason"].str.contains("no seed recorded").any()


def test_the_method_paragraph_names_the_model_that_was_fitted():
    """One trial per cell of a 2x2x2 grid leaves no room for two-way terms: main effects."""
    trials = planted_trials(PLANTED, seeds=1)
    grid = trials[
        trials["criterion"].isin(["l1", "l2"])
        & trials["finetune_method"].isin(["ce", "pgd_at"])
        & (trials["sparsity_target"] == 0.5)
    ].reset_index(drop=True)
    _, dec = _noise_text(grid)
    assert dec.method == "anova" and dec.order == 1
    assert dec.model.startswith("main effects only")
    assert "holds every interaction" in dec.model


def test_a_folded_numeric_column_is_split_at_its_median():
    rng = np.random.default_rng(1)
    trials = _with_none(rng)
    fine = trials["finetune_method"] != "none"
    trials.loc[fine, "lr"] = rng.choice([1e-3, 3e-3, 1e-2, 3e-2], int(fine.sum()))
    method = next(f for f in build_design(trials).factors if f.columns[0] == "finetune_method")
    assert len(method.levels) == 3  # none, and pgd_at split at the median learning rate
