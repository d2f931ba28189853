"""A restarted trial continues from the newest whole checkpoint its own folder holds.

Tune's snapshot can name a checkpoint that was deleted since, or miss newer ones; a copy a kill
cut short must never be continued from. The checkpoints here are real (`run_trial` stopped
after its first epoch); only the lookup of the trial's folder, which Tune's session provides
inside a trial, is pointed at a temporary folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.fs as pafs
import pytest

pytest.importorskip("ray")

from ray import tune  # noqa: E402

from robprune.trial import run_trial  # noqa: E402
from search.run import resume_point as rp  # noqa: E402
from search.state.trial_files import FINAL_DIR, RESULT_FILE, write_progress  # noqa: E402
from tests.support.trials import fast_trial  # noqa: E402


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def whole(tmp_path_factory, dense_cache) -> Path:
    """A real checkpoint after epoch 1."""
    directory = tmp_path_factory.mktemp("whole")

    def stop_after_first(report) -> None:
        report.save_checkpoint(directory)
        raise _Stop

    with pytest.raises(_Stop):
        run_trial(fast_trial(dense_cache), on_epoch=stop_after_first)
    write_progress(directory, 1, [], [{"epoch": 1}])
    return directory


@pytest.fixture
def folder(tmp_path, monkeypatch) -> Path:
    trial = tmp_path / "trial_x"
    trial.mkdir()
    monkeypatch.setattr(rp, "_folders", lambda config: (pafs.LocalFileSystem(), [str(trial)]))
    return trial


def _checkpoint(folder: Path, index: int, source: Path) -> Path:
    target = folder / f"checkpoint_{index:06d}"
    shutil.copytree(source, target)
    return target


def _handed(path: Path) -> tune.Checkpoint:
    return tune.Checkpoint(str(path), filesystem=pafs.LocalFileSystem())


def test_a_deleted_checkpoint_named_by_the_snapshot_falls_back_to_the_newest_whole(whole, folder):
    kept = _checkpoint(folder, 1, whole)
    torn = _checkpoint(folder, 2, whole)  # a copy a kill cut short
    (torn / "trial_state.pt").write_bytes((torn / "trial_state.pt").read_bytes()[:100])
    write_progress(torn, 2, [], [])
    handed = _handed(folder / "checkpoint_000003")  # pruned since the snapshot was written
    with rp.resume_point(handed, {}) as point:
        assert point is not None and not point.finished
        assert point.checkpoint.path == str(kept)
        assert (Path(point.directory) / "trial_state.pt").is_file()
        note = rp.describe(point, handed)
    assert note and str(kept) in note and "checkpoint_000003" in note


def test_a_newer_checkpoint_than_the_snapshot_knows_is_preferred(whole, folder):
    older = _checkpoint(folder, 1, whole)
    newer = _checkpoint(folder, 2, whole)
    write_progress(newer, 2, [1], [{"epoch": 1}, {"epoch": 2}])
    with rp.resume_point(_handed(older), {}) as point:
        assert point is not None and point.checkpoint.path == str(newer)


def test_a_finished_checkpoint_wins_and_is_marked_finished(whole, folder):
    _checkpoint(folder, 1, whole)
    final = folder / "checkpoint_000002" / FINAL_DIR
    final.mkdir(parents=True)
    (final / RESULT_FILE).write_text(json.dumps({"metrics": {}, "epochs": []}))
    with rp.resume_point(None, {}) as point:
        assert point is not None and point.finished
        assert point.checkpoint.path == str(folder / "checkpoint_000002")


def test_nothing_whole_starts_from_the_beginning(folder):
    (folder / "checkpoint_000001").mkdir()  # an upload that never got its files
    handed = _handed(folder / "checkpoint_000001")
    with rp.resume_point(handed, {}) as point:
        assert point is None
    assert rp.describe(None, handed).startswith("resume: continuing from the start")
    with rp.resume_point(None, {}) as point:
        assert point is None
    assert rp.describe(None, None) is None


def test_the_handed_checkpoint_when_it_is_the_newest_whole_one_says_nothing(whole, folder):
    newest = _checkpoint(folder, 4, whole)
    handed = _handed(newest)
    with rp.resume_point(handed, {}) as point:
        assert point is not None and point.checkpoint.path == str(newest)
        assert rp.describe(point, handed) is None


def test_a_checkpoint_whose_files_do_not_match_its_manifest_is_passed_over(whole, folder):
    from search.state.checkpoints import write_manifest

    kept = _checkpoint(folder, 1, whole)
    short = _checkpoint(folder, 2, whole)
    write_progress(short, 2, [1], [])
    write_manifest(short)
    write_progress(short, 2, [1, 1], [])  # parses, but its size no longer matches the manifest
    with rp.resume_point(None, {}) as point:
        assert point is not None and point.checkpoint.path == str(kept)


def test_a_trial_in_a_suffixed_folder_also_looks_in_its_namesake():
    own, root = "/e/run-000/trial_abc_00019_3c62", "/e/run-000/"
    assert rp.trial_folders(own, root, "abc_00019", None) == [own, "/e/run-000/trial_abc_00019"]
    plain = "/e/run-000/trial_abc_00019"
    assert rp.trial_folders(plain, root, "abc_00019", None) == [plain]
    earlier = rp.trial_folders(plain, root, "abc_00019", "trial_old")
    assert earlier == [plain, "/e/run-000/trial_old"]


def test_a_finished_namesake_is_reported_again_not_trained(whole, tmp_path, monkeypatch):
    own, namesake = tmp_path / "trial_a_00019_3c62", tmp_path / "trial_a_00019"
    _checkpoint(own, 1, whole)  # made again on resume, one epoch in
    final = namesake / "checkpoint_000002" / FINAL_DIR
    final.mkdir(parents=True)
    (final / RESULT_FILE).write_text(json.dumps({"metrics": {}, "epochs": []}))
    folders = (pafs.LocalFileSystem(), [str(own), str(namesake)])
    monkeypatch.setattr(rp, "_folders", lambda config: folders)
    with rp.resume_point(None, {}) as point:
        assert point is not None and point.finished
        assert point.checkpoint.path == str(namesake / "checkpoint_000002")
