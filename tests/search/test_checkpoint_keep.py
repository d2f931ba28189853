"""A trial keeps its newest two epoch checkpoints and its final one; Tune's snapshot period
grows with the planned trials (so the snapshot bytes stay linear), unless the user set it."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pyarrow.fs as pafs
import pytest

pytest.importorskip("ray")

from search.run import session  # noqa: E402
from search.run.checkpoint_keep import ForgetOlder, prune_older  # noqa: E402
from search.state.trial_files import FINAL_DIR, RESULT_FILE  # noqa: E402


def _checkpoint(folder: Path, index: int, final: bool = False) -> None:
    target = folder / f"checkpoint_{index:06d}"
    target.mkdir(parents=True)
    (target / "trial_state.pt").write_bytes(b"x")
    if final:
        (target / FINAL_DIR).mkdir()
        (target / FINAL_DIR / RESULT_FILE).write_text("{}")


def test_older_epoch_checkpoints_go_the_newest_two_and_a_final_one_stay(tmp_path):
    for index in range(5):
        _checkpoint(tmp_path, index, final=index == 1)  # a final one re-reported since
    (tmp_path / "result.json").write_text("{}")
    deleted = prune_older(pafs.LocalFileSystem(), str(tmp_path))
    assert sorted(Path(p).name for p in deleted) == ["checkpoint_000000", "checkpoint_000002"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["checkpoint_000001", "checkpoint_000003", "checkpoint_000004", "result.json"]
    assert prune_older(pafs.LocalFileSystem(), str(tmp_path)) == []
    assert prune_older(pafs.LocalFileSystem(), str(tmp_path / "missing")) == []


def test_the_driver_forgets_all_but_the_newest_checkpoints():
    metadata = SimpleNamespace(
        checkpoint_manager=SimpleNamespace(_checkpoint_results=list(range(5))),
        invalidate_cache=lambda: None,
    )
    ForgetOlder(keep=2).on_checkpoint(0, [], SimpleNamespace(run_metadata=metadata))
    assert metadata.checkpoint_manager._checkpoint_results == [3, 4]


def test_the_snapshot_period_grows_with_the_trials_unless_the_user_set_it(monkeypatch):
    monkeypatch.delenv(session.SNAPSHOT_ENV, raising=False)
    monkeypatch.setattr(session, "_period_set", None)
    assert session.snapshot_period_s(20) == session.SNAPSHOT_MIN_S
    assert session.snapshot_period_s(2000) == 10 * session.snapshot_period_s(200)
    session.set_snapshot_period(2000)
    assert float(session.os.environ[session.SNAPSHOT_ENV]) == session.snapshot_period_s(2000)
    session.set_snapshot_period(20)  # a later run in the same process: its own period
    assert float(session.os.environ[session.SNAPSHOT_ENV]) == session.SNAPSHOT_MIN_S
    monkeypatch.setenv(session.SNAPSHOT_ENV, "1")
    session.set_snapshot_period(2000)
    assert session.os.environ[session.SNAPSHOT_ENV] == "1"
