"""Reading the results tables: sources, merging, schema checks, bad input, the fixture."""

from __future__ import annotations

import pytest

from analysis.read.load import load_results
from robprune.config import factors
from robprune.errors import BadInput
from tests.support.analysis_tables import (
    PLANTED,
    planted_trials,
    write_experiment,
    write_raw_trials,
)


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


def test_a_switch_factor_reads_as_its_spelling(tmp_path):
    """A bool factor (prune.mrs.reattack) is a level "true"/"false", null where it does not
    apply, never a number 1.0/0.0."""
    trials = planted_trials(PLANTED, seeds=1)
    trials["mrs_reattack"] = [(None, True, False)[i % 3] for i in range(len(trials))]
    ok = load_results([write_experiment(tmp_path, trials)]).ok
    assert ok["mrs_reattack"].iloc[:3].tolist()[1:] == ["true", "false"]
    assert ok["mrs_reattack"].iloc[:3].isna().tolist() == [True, False, False]
