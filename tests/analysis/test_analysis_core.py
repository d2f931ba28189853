"""analysis/: loading, design, ANOVA, Shapley, intervals and verdicts on planted effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.anova import choose_terms, run_anova, statsmodels_anova, term_ss
from analysis.design import NA, build_design, code_column
from analysis.effects import paper_view, ratio_rule_effect
from analysis.estimable import NotEstimable
from analysis.load import load_results
from analysis.shapley import run_shapley, shapley_matrix
from analysis.shares import Decomposition, decompose
from analysis.verdict import verdict
from robprune.config import factors
from robprune.errors import BadInput
from tests.support.analysis_tables import planted_trials, write_experiment, write_raw_trials

PLANTED = {"finetune_method": 0.60, "criterion": 0.05}


def _share(dec: Decomposition, factor: str) -> tuple[float, float, float]:
    i = [name.split("+")[0] for name in dec.factors].index(factor)
    return float(dec.shares[i]), float(dec.lo[i]), float(dec.hi[i])


# --- loading ------------------------------------------------------------------------------


def test_load_excludes_and_counts_failed_trials(tmp_path):
    trials = planted_trials(PLANTED, seeds=1, failed=7)
    results = load_results([write_experiment(tmp_path, trials)])
    assert len(results.trials) == 120
    assert len(results.ok) == 113
    assert results.excluded == {"ERROR": 7}
    assert results.top_errors[0] == ("RuntimeError: CUDA out of memory", 7)


def test_load_accepts_experiment_dir_results_dir_and_file(tmp_path):
    results_dir = write_experiment(tmp_path / "exp", planted_trials(PLANTED, seeds=1))
    for path in (tmp_path / "exp", results_dir, results_dir / "trials.parquet"):
        assert len(load_results([path]).ok) == 120


def test_load_merges_experiments_and_counts_duplicates_once(tmp_path):
    a = write_experiment(tmp_path / "a", planted_trials(PLANTED, seeds=1, experiment="a"))
    b = write_experiment(tmp_path / "b", planted_trials(PLANTED, seeds=1, experiment="b"))
    merged = load_results([a, b, a])
    assert len(merged.ok) == 240
    assert any("duplicate" in note for note in merged.notes)


def test_missing_required_columns_are_named(tmp_path):
    frame = planted_trials(PLANTED, seeds=1).drop(columns=["robust_acc", "status", "criterion"])
    with pytest.raises(BadInput, match=r"missing columns: status, robust_acc$"):
        load_results([write_raw_trials(tmp_path, frame)])
    frame = planted_trials(PLANTED, seeds=1).drop(columns=["clean_acc"])
    with pytest.raises(BadInput, match=r"missing columns: clean_acc$"):
        load_results([write_raw_trials(tmp_path, frame)], response="clean_acc")


def test_wrong_types_are_named(tmp_path):
    frame = planted_trials(PLANTED, seeds=1)
    frame["robust_acc"] = frame["robust_acc"].map(lambda v: f"{v:.3f}")
    with pytest.raises(BadInput, match=r"wrong types: robust_acc is string \(expected double\)"):
        load_results([write_raw_trials(tmp_path, frame)])


def test_empty_and_all_failed_tables(tmp_path):
    empty = planted_trials(PLANTED, seeds=1).iloc[:0]
    with pytest.raises(BadInput, match="empty"):
        load_results([write_experiment(tmp_path / "e", empty)])
    failed = planted_trials(PLANTED, seeds=1)
    failed["status"] = "ERROR"
    with pytest.raises(BadInput, match="all 120 trials failed"):
        load_results([write_experiment(tmp_path / "f", failed)])


def test_bad_paths(tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        load_results([tmp_path / "nowhere"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BadInput, match="not a Parquet file"):
        load_results([tmp_path / "notes.txt"])
    with pytest.raises(BadInput, match="no trials.parquet"):
        load_results([tmp_path])
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(BadInput, match="not a readable Parquet file"):
        load_results([tmp_path / "bad.parquet"])


# --- design -------------------------------------------------------------------------------


def test_design_balanced_grid_and_constant_factors():
    design = build_design(planted_trials(PLANTED, seeds=3))
    assert design.balanced and design.replicates == 3
    assert [f.name for f in design.factors] == [
        "criterion",
        "ratio_rule",
        "sparsity_target",
        "finetune_method",
    ]
    assert design.constant["dataset"] == "digits"
    # temperature (mrs only) and beta (trades/mart only) take one value each: not factors
    assert any("determined by ratio rule" in n for n in design.notes)


def test_nested_and_continuous_factors_are_folded_and_binned():
    trials = planted_trials(PLANTED, balanced=False, n=800, search=True)
    design = build_design(trials)
    names = [f.name for f in design.factors]
    assert "ratio_rule+temperature" in names
    assert "temperature" not in names and "beta" not in names
    # the fine-tuning recipe only applies when something is fine-tuned: folded into the method
    assert "finetune_method+finetune_epochs+lr+beta" in names and "lr" not in names
    method = design.factors[names.index("finetune_method+finetune_epochs+lr+beta")]
    assert method.binned and any("lr=" in level for level in method.levels)
    ratio = design.factors[names.index("ratio_rule+temperature")]
    assert "uniform" in ratio.levels
    assert any(level.startswith("mrs (temperature=") for level in ratio.levels)
    assert not design.balanced
    assert any("split at its median" in n for n in design.notes)


def test_code_column_null_is_its_own_level():
    coded = code_column(pd.Series([None, 1.0, 2.0, None]))
    assert coded.levels == (NA, "1", "2")
    assert list(coded.codes) == [0, 1, 2, 0]


# --- ANOVA --------------------------------------------------------------------------------


def test_fast_sums_of_squares_match_statsmodels():
    trials = planted_trials(PLANTED, seeds=2, rng=3)
    design = build_design(trials)
    y = trials["robust_acc"].to_numpy()
    terms, order = choose_terms(design.shape, len(y))
    assert order == 2
    reference = statsmodels_anova(y, design, terms, order)
    values = y[np.argsort(design.cell_index(), kind="stable")].reshape(-1, 2)
    fast = term_ss(values.mean(axis=1).reshape((1,) + design.shape), 2, terms)[0]
    np.testing.assert_allclose(fast, reference.loc[terms, "sum_sq"].to_numpy(), rtol=1e-8)
    with_sm = run_anova(y, design, resamples=50, reference=True).table
    without = run_anova(y, design, resamples=50, reference=False).table
    cols = ["sum_sq", "F", "p_value", "eta2", "partial_eta2", "omega2"]
    np.testing.assert_allclose(with_sm[cols].to_numpy(), without[cols].to_numpy(), rtol=1e-7)


def test_one_seed_per_cell_uses_residual_bootstrap():
    trials = planted_trials(PLANTED, seeds=1)
    result = run_anova(trials["robust_acc"].to_numpy(), build_design(trials), resamples=100)
    assert "residuals of the fitted model" in result.resampling
    row = result.table.set_index("term").loc["finetune_method"]
    assert row["omega2_lo"] < 0.6 < row["omega2_hi"]


# --- Shapley ------------------------------------------------------------------------------


def test_shapley_weights_sum_to_full_r2():
    weights = shapley_matrix(4)
    r2 = np.random.default_rng(0).random((3, 16))
    r2[:, 0] = 0.0
    np.testing.assert_allclose((r2 @ weights).sum(axis=1), r2[:, 15])


def test_shapley_equals_eta2_in_a_balanced_grid():
    trials = planted_trials(PLANTED, seeds=2)
    design = build_design(trials)
    y = trials["robust_acc"].to_numpy()
    lmg = run_shapley(y, design, resamples=50).table
    anova = run_anova(y, design, resamples=50, reference=False).table
    np.testing.assert_allclose(lmg["share_raw"], anova["eta2"].iloc[: design.k], atol=1e-9)


# --- planted effects ----------------------------------------------------------------------


@pytest.mark.parametrize("balanced", [True, False])
def test_planted_shares_recovered_within_three_points(balanced):
    trials = planted_trials(PLANTED, balanced=balanced, seeds=20, n=3000, rng=11)
    design = build_design(trials)
    dec = decompose(trials["robust_acc"].to_numpy(), design, "robust_acc", resamples=200)
    assert dec.method == ("anova" if balanced else "shapley")
    for factor, truth in PLANTED.items():
        share, lo, hi = _share(dec, factor)
        assert abs(share - truth) <= 0.03, (factor, share)
        assert lo <= truth <= hi
    for factor in ("ratio_rule", "sparsity_target"):
        assert _share(dec, factor)[0] <= 0.03


#: Every factor of the fixture, planted or not (true share 0), with the widest mean 95%
#: interval a sound bootstrap gives it on 400-trial tables (measured: 0.10, 0.06, 0.01, 0.01).
MAX_MEAN_WIDTH = {
    "finetune_method": 0.15,
    "criterion": 0.09,
    "ratio_rule": 0.03,
    "sparsity_target": 0.03,
}


@pytest.mark.parametrize("balanced", [True, False])
def test_interval_coverage_over_simulated_tables(balanced):
    """60 tables: each planted factor's 95% interval covers its share in >= 88% of them (not
    pooled over factors); a factor without effect gets a lower bound above 0 (a false
    positive; nominal 2.5%, one-sided) in at most 6 of them (the binomial 99% limit for 2.5%
    over 60 tables; docs/analysis.md has the rate over 300), counted as a miss and never
    excused by a bound clipped at 0; the intervals are narrow enough to say something."""
    hits: dict[str, list[bool]] = {f: [] for f in MAX_MEAN_WIDTH}
    widths: dict[str, list[float]] = {f: [] for f in MAX_MEAN_WIDTH}
    for i in range(60):
        trials = planted_trials(PLANTED, balanced=balanced, seeds=3, n=400, rng=500 + i)
        design = build_design(trials)
        dec = decompose(
            trials["robust_acc"].to_numpy(),
            design,
            "robust_acc",
            resamples=200,
            rng=np.random.default_rng(i),
            reference=False,
        )
        for factor in MAX_MEAN_WIDTH:
            truth = PLANTED.get(factor, 0.0)
            _, lo, hi = _share(dec, factor)
            hits[factor].append(lo <= truth <= hi)
            widths[factor].append(hi - lo)
    for factor, bound in MAX_MEAN_WIDTH.items():
        if factor in PLANTED:
            assert np.mean(hits[factor]) >= 0.88, (factor, np.mean(hits[factor]))
        else:  # bounds are never below 0, so a miss here is exactly lo > 0
            assert 60 - sum(hits[factor]) <= 6, (factor, 60 - sum(hits[factor]))
        assert np.mean(widths[factor]) <= bound, (factor, np.mean(widths[factor]))
        assert max(widths[factor]) <= 2 * bound, (factor, max(widths[factor]))


# --- verdicts -----------------------------------------------------------------------------


def _verdict_for(shares, balanced=True, **kw):
    trials = planted_trials(shares, balanced=balanced, seeds=3, n=600, **kw)
    design = build_design(trials)
    y = trials["robust_acc"].to_numpy()
    dec = decompose(y, design, "robust_acc", resamples=150)
    return verdict(dec, design, "robust_acc", y)


def test_verdict_fine_tuning_dominates():
    result = _verdict_for(PLANTED)
    assert result.answer == "finetune_dominates"
    assert result.dominant == "finetune_method"
    assert result.matters == ("finetune_method", "criterion")
    assert result.headline.startswith("The fine-tuning method dominates robust accuracy: both")
    assert "explains the most" not in result.text
    # the second sentence places the other factors, by their own tests (no effect planted)
    second = result.headline.split(". ", 1)[1]
    assert second.startswith("Of the other factors, the ratio rule")
    assert second.endswith("are not distinguishable from noise")


@pytest.mark.parametrize("balanced", [True, False])
def test_verdict_flips_when_the_criterion_dominates(balanced):
    result = _verdict_for({"criterion": 0.60, "finetune_method": 0.05}, balanced=balanced)
    assert result.answer == "criterion_dominates"
    assert result.dominant == "criterion"
    assert result.headline.startswith("The criterion dominates robust accuracy")
    assert "share points" in result.headline


def test_verdict_on_pure_noise_is_not_distinguishable():
    result = _verdict_for({})
    assert result.answer == "neither" and not result.distinguishable
    assert result.headline.startswith(
        "Neither the fine-tuning method nor the criterion is distinguishable from noise"
    )
    assert "80% of the time (minimum detectable effect)" in result.headline


def test_only_one_factor_with_an_effect_is_the_only_one_named():
    result = _verdict_for({"criterion": 0.3}, balanced=False)
    assert result.answer == "only_criterion" and result.matters == ("criterion",)
    assert result.headline.startswith("Only the criterion (")


def test_shares_and_unexplained_add_to_one_hundred_percent():
    for shares in ({}, PLANTED):
        trials = planted_trials(shares, seeds=3)
        y = trials["robust_acc"].to_numpy()
        dec = decompose(y, build_design(trials), "robust_acc", resamples=60)
        total = dec.terms["share"].sum() + dec.noise[0]
        assert total == pytest.approx(1.0, abs=1e-9)
        assert (dec.terms["share_lo"] <= dec.terms["share"]).all()
        assert (dec.terms["share"] <= dec.terms["share_hi"]).all()
        assert dec.noise[1] <= dec.noise[0] <= dec.noise[2]


def test_marginal_means_are_not_biased_by_missing_cells():
    """Only the criterion matters; the best criterion ran mostly with the worst method. Raw
    level means rank the methods by the criteria they met; marginal means do not."""
    rng = np.random.default_rng(3)
    trials = planted_trials({}, seeds=3, rng=rng)
    trials = trials[
        ~((trials["finetune_method"] == "ce") & (trials["criterion"] != "l1"))
    ].reset_index(drop=True)
    boost = np.where(trials["criterion"] == "l1", 0.10, 0.0)
    y = 0.4 + boost + rng.normal(0, 0.01, len(trials))
    trials = trials.assign(robust_acc=y)
    design = build_design(trials)
    dec = decompose(y, design, "robust_acc", resamples=60)
    result = verdict(dec, design, "robust_acc", y)
    j = [f.name for f in design.factors].index("finetune_method")
    raw = trials.groupby("finetune_method")["robust_acc"].mean()
    assert raw["ce"] - raw.drop("ce").max() > 0.05  # raw means: ce looks best
    effect = result.effects[j]
    assert effect.size < 0.01  # marginal means: no method effect
    assert "finetune_method" not in result.matters


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


def test_fixture_nulls_follow_the_factor_table():
    """The planted tables are faithful: temperature and beta are null exactly where
    robprune.config.factors says they do not apply (a search-like table, where both vary)."""
    trials = planted_trials(PLANTED, seeds=1, search=True)
    for column in ("temperature", "beta"):
        spec = factors.factor(column)
        governing = factors.factor(spec.parent).paths[0]

        def applies(level: str, spec=spec, governing=governing) -> bool:
            return spec.value(lambda path: level if path == governing else 1.0) is not None

        expected = trials[spec.parent].map(applies)
        assert (trials[column].notna() == expected).all(), column
        assert expected.any() and not expected.all()


def test_fixture_loads_back_with_every_column(tmp_path):
    results = load_results([write_experiment(tmp_path, planted_trials(PLANTED, seeds=1))])
    assert results.absent == {}
    assert results.ok["criterion"].notna().all()
