"""Experiments made by an earlier robprune resume with this one.

`tests/data/stored-{grid,optimize}.tar.gz` were made by robprune at commit 5e7d639 (before
the analysis, Tune-internals and front-door moves) with `tools/make_stored_experiment.py`:
a 4-trial search (criteria l1, random, l2, fpgm; the optimize one by TPE, with a learning
rate) whose driver was SIGKILLed with one trial finished, one mid-fine-tuning and two not
started. Tune's snapshot pickles robprune's searcher and callbacks by their class paths, so
a module moved without an alias breaks exactly this. Tune keeps absolute paths in its
snapshot: the experiments are unpacked where they were made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

FOLDER = Path("/tmp/robprune-stored-experiment")  # tools/make_stored_experiment.FOLDER
DATA = Path(__file__).resolve().parents[1] / "data"
EPOCHS = 12


@pytest.fixture
def unpacked(request):
    mode = request.param
    exp = FOLDER / mode
    shutil.rmtree(exp, ignore_errors=True)
    FOLDER.mkdir(parents=True, exist_ok=True)
    with tarfile.open(DATA / f"stored-{mode}.tar.gz") as tar:
        tar.extractall(FOLDER, filter="data")
    yield exp
    shutil.rmtree(exp, ignore_errors=True)


@pytest.mark.parametrize("unpacked", ["grid", "optimize"], indirect=True)
def test_an_experiment_from_before_the_moves_resumes(unpacked):
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    resumed = subprocess.run(
        [sys.executable, "-m", "cli", "resume", str(unpacked)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-3000:]
    assert "could not restore" not in out, out[-3000:]  # Tune's own snapshot was restored
    assert "Traceback" not in out, out[-3000:]

    trials = pq.read_table(unpacked / "results" / "trials.parquet").to_pylist()
    assert len(trials) == 4 and len({t["trial_id"] for t in trials}) == 4
    assert all(t["status"] == "TERMINATED" for t in trials), [t["error"] for t in trials]
    assert all(t["epochs_completed"] == EPOCHS for t in trials)
    continued = [t for t in trials if t["restores"]]
    assert continued and all(t["restored_from_epoch"] >= 2 for t in continued)
    epochs = pq.read_table(unpacked / "results" / "epochs.parquet").to_pylist()
    for t in trials:
        rows = sorted(e["epoch"] for e in epochs if e["trial_id"] == t["trial_id"])
        assert rows == list(range(1, EPOCHS + 1)), (t["trial_id"], rows)
