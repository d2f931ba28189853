"""Early-stopped searches, minimal tables, power, and the bounds of printed shares."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis.document.build import build_report
from analysis.document.layout import blocks
from analysis.verdict.response import SURVIVORS
from cli import main
from robprune.io.results_schema import TRIALS_SCHEMA
from tests.support.analysis_tables import PLANTED, epochs_for, planted_trials, write_experiment

#: Every trials-table column the report can do without (all but status and the response).
OPTIONAL = [name for name in TRIALS_SCHEMA.names if name not in ("status", "robust_acc")]


def _markdown(report) -> str:
    from analysis.render.markdown import render_markdown

    return render_markdown(blocks(report))


def _percentages(markdown: str) -> list[float]:
    """Every 'N%' and the interval '[lo, hi]' after it (differences, in points, may be < 0)."""
    number = r"(-?\d+(?:\.\d+)?)"
    found = [float(v) for v in re.findall(number + "%", markdown)]
    for _, lo, hi in re.findall(number + r"% \[" + number + ", " + number + r"\]", markdown):
        found += [float(lo), float(hi)]
    return found


def test_minimal_table_reports_with_exit_0(tmp_path, capsys):
    """status, the response, seed and the question's factors only: no provenance columns."""
    trials = planted_trials(PLANTED, seeds=3)
    kept = ["status", "robust_acc", "seed", "criterion", "finetune_method"]
    path = tmp_path / "results" / "trials.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pq.read_table(_write(tmp_path / "full", trials)).select(kept), path)
    code = main(["report", str(path.parent), "-o", str(tmp_path / "r")])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.startswith("The fine-tuning method dominates robust accuracy:")
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert all(0.0 <= v <= 100.0 for v in _percentages(markdown))


def _write(root: Path, trials: pd.DataFrame) -> Path:
    return write_experiment(root, trials) / "trials.parquet"


@pytest.fixture(scope="module")
def full_table(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("full")
    return _write(root, planted_trials(PLANTED, seeds=2, rng=4))


@pytest.mark.parametrize("column", OPTIONAL)
def test_report_without_each_optional_column(full_table, tmp_path, column):
    table = pq.read_table(full_table)
    path = tmp_path / "results" / "trials.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(table.drop_columns([column]), path)
    report = build_report([path.parent], resamples=20, draw=False)
    markdown = _markdown(report)
    assert report.primary.verdict.headline
    assert all(0.0 <= v <= 100.0 for v in _percentages(markdown)), column


def _asha(rng: np.random.Generator, survivors_only_ce: bool = False):
    """A grid where a rung stopped the worst third by validation accuracy at epoch 1."""
    trials = planted_trials(PLANTED, seeds=2, rng=rng)
    epochs = epochs_for(trials, epochs=4)
    first = epochs[epochs["epoch"] == 1].set_index("trial_id")["val_robust_acc"]
    cut = first < first.quantile(1 / 3)
    stopped = trials["trial_id"].map(cut).to_numpy()
    epochs = epochs[~(epochs["trial_id"].map(cut) & (epochs["epoch"] > 1))]
    trials.loc[stopped, ["robust_acc", "clean_acc", "val_robust_acc"]] = np.nan
    trials.loc[stopped, "epochs_completed"] = 1
    return trials, epochs


def test_early_stopped_search_headlines_a_response_every_trial_has(tmp_path):
    trials, epochs = _asha(np.random.default_rng(2))
    results = write_experiment(tmp_path / "asha", trials, epochs=epochs)
    report = build_report([results], resamples=40, draw=False)
    stopped = int(trials["robust_acc"].isna().sum())
    assert report.adaptive.stopped == stopped and report.adaptive.epoch == 1
    assert report.primary.response == "epoch1_val_robust_acc"
    assert len(report.primary.trials) == len(trials)  # every completed trial, stopped or not
    assert report.survivors is not None and report.survivors.scope == SURVIVORS
    assert len(report.survivors.trials) == len(trials) - stopped
    markdown = _markdown(report)
    first = markdown.split("\n\n")[1]
    assert f"Adaptive design: {stopped} of the {len(trials)} completed trials" in first
    assert "validation robust accuracy at epoch 1" in first
    assert f"Robust accuracy ({SURVIVORS}):" in markdown


def test_a_search_without_stopped_trials_reads_as_before(tmp_path):
    trials = planted_trials(PLANTED, seeds=2)
    results = write_experiment(tmp_path / "grid", trials, epochs=epochs_for(trials))
    report = build_report([results], resamples=40, draw=False)
    assert not report.adaptive.adaptive and report.survivors is None
    assert report.primary.response == "robust_acc"
    assert "Adaptive design" not in _markdown(report)


def test_one_survivor_of_ten_still_gets_a_verdict(tmp_path):
    """ASHA stopped 9 of 10 trials at epoch 1: the headline uses all 10."""
    rng = np.random.default_rng(8)
    trials = planted_trials({"finetune_method": 0.8}, balanced=False, n=10, rng=rng)
    trials = trials.assign(criterion="l1", ratio_rule="uniform", sparsity_target=0.5)
    trials = trials.assign(temperature=np.nan)
    epochs = epochs_for(trials, epochs=3)
    stopped = np.arange(10) != 0
    epochs = epochs[~(np.repeat(stopped, 3) & (epochs["epoch"] > 1).to_numpy())]
    trials.loc[stopped, ["robust_acc", "clean_acc", "val_robust_acc"]] = np.nan
    report = build_report([write_experiment(tmp_path / "x", trials, epochs=epochs)], draw=False)
    assert report.primary.response == "epoch1_val_robust_acc"
    assert not report.primary.verdict.headline.startswith("No verdict")
    assert report.primary.decomposition.n == 10


def test_power_table_for_several_seed_counts(tmp_path, capsys):
    trials = planted_trials(PLANTED, seeds=3)
    results = write_experiment(tmp_path / "g", trials)
    report = build_report([results], resamples=40, power=True, draw=False)
    table = report.power
    assert list(table["seeds"]) == [1, 2, 3, 5, 10, 20]
    assert table.loc[table["seeds"] == 3, "current"].item()
    mde = table["finetune_method"].to_numpy()
    assert np.all(np.diff(mde[1:]) < 0)  # more seeds, smaller detectable differences
    assert "minimum detectable effect" in report.primary.verdict.text
    verdict_mde = report.primary.verdict.mde["finetune_method"]
    assert verdict_mde == pytest.approx(table.loc[table["seeds"] == 3, "finetune_method"].item())
    assert "Power: minimum detectable effect by number of seeds" in _markdown(report)
