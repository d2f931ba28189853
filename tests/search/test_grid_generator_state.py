"""A grid's saved generator against the saved snapshot (search.run.tune_state): the two files
reach object storage one after the other, and a snapshot whose generator made trials it does
not list must not be restored (those cells would never run)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pyarrow.fs as pafs

from search.run.reconcile import newest_snapshot
from search.run.tune_state import STATE_FILE, grid_generator_disagrees

DATA = Path(__file__).resolve().parents[1] / "data"


def _torn(run: Path) -> bool:
    """What reconciliation checks: the newest snapshot's trials against the generator's."""
    fs = pafs.LocalFileSystem()
    _, data = newest_snapshot(fs, str(run))
    return grid_generator_disagrees(fs, str(run), len(data["trial_data"]))


def _run(tmp_path: Path) -> tuple[Path, Path]:
    with tarfile.open(DATA / "stored-grid.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    run = tmp_path / "grid" / "tune" / "run-000"
    state = next(p for p in run.iterdir() if STATE_FILE.match(p.name))
    return run, state


def test_a_generator_that_made_what_the_snapshot_lists_agrees(tmp_path):
    run, state = _run(tmp_path)
    listed = len(json.loads(state.read_text())["trial_data"])
    assert listed == 2  # the stored grid: two trials made, two pending
    assert not grid_generator_disagrees(pafs.LocalFileSystem(), str(run), listed)
    assert not _torn(run)


def test_a_snapshot_missing_trials_the_generator_made_disagrees(tmp_path):
    run, state = _run(tmp_path)
    data = json.loads(state.read_text())
    data["trial_data"] = data["trial_data"][:1]  # the upload of the newer snapshot was lost
    state.write_text(json.dumps(data))
    assert _torn(run)
    assert grid_generator_disagrees(pafs.LocalFileSystem(), str(run), 3)  # or behind it
