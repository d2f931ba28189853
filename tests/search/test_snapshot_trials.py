"""Tune's snapshot is read for its trials without any trial's result.json (`SnapshotTrials`):
the export reads each trial's own files, and the analysis Tune builds inside a restore is never
used (robprune calls `fit()`). On object storage Tune's reading is two round trips a trial,
one trial after another: at 2,000 trials most of a resume's wait on moto."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from ray import tune
from ray.tune import ExperimentAnalysis
from ray.tune.impl import tuner_internal

from search.run.moved_classes import alias_moved_classes
from search.run.tune_internals import SnapshotTrials, restore_reads_no_results
from tests.support.counting_fs import CountingHandler
from tests.support.paths import ROOT


def _stored_run(tmp_path: Path) -> Path:
    with tarfile.open(ROOT / "tests" / "data" / "stored-grid.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "grid" / "tune" / "run-000"


def _results_read(handler: CountingHandler) -> list[str]:
    return [p for p in handler.paths if p.endswith("/result.json") and "/final/" not in p]


def test_the_snapshots_trials_are_read_without_their_results(tmp_path):
    run = _stored_run(tmp_path)
    handler = CountingHandler()
    trials = SnapshotTrials(str(run), storage_filesystem=pafs.PyFileSystem(handler)).trials
    full = ExperimentAnalysis(str(run), storage_filesystem=pafs.LocalFileSystem())
    assert len(trials) > 1 and [t.trial_id for t in trials] == [t.trial_id for t in full.trials]
    assert [t.status for t in trials] == [t.status for t in full.trials]
    assert _results_read(handler) == []
    assert any(len(df) for df in full.trial_dataframes.values())  # Tune's own reads them


def train_trial(config):  # the stored run's trainable, by name (never run here)
    raise AssertionError("not run")


def test_a_restore_reads_no_trials_results(tmp_path):
    run = _stored_run(tmp_path)
    handler = CountingHandler()
    fs = pafs.PyFileSystem(handler)
    alias_moved_classes()  # the stored snapshot names classes where robprune had them
    with restore_reads_no_results():
        tuner = tune.Tuner.restore(str(run), trainable=train_trial, storage_filesystem=fs)
    assert tuner is not None and _results_read(handler) == []
    handler.paths.clear()
    tune.Tuner.restore(str(run), trainable=train_trial, storage_filesystem=fs)
    assert _results_read(handler)  # without it, Tune reads every trial's


def test_tunes_class_is_put_back_even_when_the_restore_raises():
    with pytest.raises(KeyError):
        with restore_reads_no_results():
            assert tuner_internal.ExperimentAnalysis is SnapshotTrials
            raise KeyError("a failed restore")
    assert tuner_internal.ExperimentAnalysis is ExperimentAnalysis
