"""A repeat's wait for its original (search.run.repeat_answer.await_original) always ends.

Planted trial directories on a local filesystem, no Ray: the answer comes from whatever record
holds the original's result, and when none does and nothing moves, the repeat trains itself
after the stall bound instead of waiting forever.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from search.run.end_marker import END_MARKER
from search.run.repeat_answer import VERDICT_FILE, await_original
from search.state.storage import LOCAL


def _trial(root: Path, name: str, *, checkpoints: int = 0, final: bool = False) -> Path:
    trial = root / name
    trial.mkdir(parents=True)
    for index in range(checkpoints):
        (trial / f"checkpoint_{index:06d}").mkdir()
        (trial / f"checkpoint_{index:06d}" / "progress.json").write_text("{}")
    if final and checkpoints:
        last = trial / f"checkpoint_{checkpoints - 1:06d}" / "final"
        last.mkdir()
        (last / "result.json").write_text('{"epochs": []}')
    return trial


def _wait(original: Path, own: Path, *, same_run: bool = True, stall: float = 30.0):
    lines: list[str] = []
    start = time.monotonic()
    answer = await_original(
        LOCAL, str(original), str(own), same_run=same_run, stall=stall, poll=0.05, say=lines.append
    )
    return answer, time.monotonic() - start, lines


@pytest.mark.parametrize(("status", "replays"), [("TERMINATED", True), ("ERROR", False)])
def test_the_end_marker_answers_at_once(tmp_path, status, replays):
    original = _trial(tmp_path, "trial_a", checkpoints=2)
    (original / END_MARKER).write_text(json.dumps({"status": status, "result": {}}))
    answer, took, lines = _wait(original, _trial(tmp_path, "trial_b"))
    assert (answer.checkpoint == f"{original}/checkpoint_000001") is replays, answer
    assert took < 1 and not lines


def test_a_torn_marker_is_no_answer_and_the_stall_bound_ends_the_wait(tmp_path):
    original = _trial(tmp_path, "trial_a", checkpoints=1)
    (original / END_MARKER).write_text('{"status": "TERMIN')  # a kill mid-write
    answer, took, lines = _wait(original, _trial(tmp_path, "trial_b"), stall=0.3)
    assert answer.checkpoint is None and "no sign of the original" in answer.why
    assert 0.3 <= took < 5
    assert len(lines) == 1 and "waiting for its end marker" in lines[0] and "trial_a" in lines[0]


def test_a_stalled_original_with_a_final_checkpoint_is_replayed(tmp_path):
    original = _trial(tmp_path, "trial_a", checkpoints=3, final=True)
    answer, took, _ = _wait(original, _trial(tmp_path, "trial_b"), stall=0.2)
    assert answer.checkpoint == f"{original}/checkpoint_000002" and took < 5


def test_the_drivers_verdict_ends_the_wait(tmp_path):
    """The reconciliation found the original in no record of the run (dropped)."""
    original = tmp_path / "trial_a"  # never written at all
    own = _trial(tmp_path, "trial_b")
    (own / VERDICT_FILE).write_text(json.dumps({"why": "dropped"}))
    answer, took, _ = _wait(original, own)
    assert answer.checkpoint is None and "no record" in answer.why and took < 1


def test_an_original_of_an_earlier_run_is_not_waited_for(tmp_path):
    ended = _trial(tmp_path / "run-000", "trial_a", checkpoints=2)  # stopped early: no marker
    answer, took, _ = _wait(ended, _trial(tmp_path, "trial_b"), same_run=False)
    assert answer.checkpoint == f"{ended}/checkpoint_000001" and took < 1
    failed = _trial(tmp_path / "run-000", "trial_c", checkpoints=1)
    (failed / "error.txt").write_text("boom")
    answer, _, _ = _wait(failed, _trial(tmp_path, "trial_d"), same_run=False)
    assert answer.checkpoint is None and "failed" in answer.why


def test_a_moving_original_is_waited_for_past_the_stall_bound(tmp_path):
    """Signs of life (a new checkpoint) restart the bound; the marker then answers."""
    import threading

    original = _trial(tmp_path, "trial_a", checkpoints=1)

    def progress() -> None:
        for index in range(1, 4):
            time.sleep(0.15)
            (original / f"checkpoint_{index:06d}").mkdir()
            (original / f"checkpoint_{index:06d}" / "progress.json").write_text("{}")
        time.sleep(0.15)
        (original / END_MARKER).write_text(json.dumps({"status": "TERMINATED"}))

    worker = threading.Thread(target=progress)
    worker.start()
    answer, took, _ = _wait(original, _trial(tmp_path, "trial_b"), stall=0.4)
    worker.join()
    assert answer.checkpoint == f"{original}/checkpoint_000003", answer
    assert took >= 0.5


def test_a_checkpoint_still_being_stored_is_not_the_answer(tmp_path):
    """A finished original re-reported on resume is copied into a new checkpoint while its
    end marker already exists: the answer is its last whole checkpoint, not the copy."""
    from search.state.checkpoints import write_manifest

    original = _trial(tmp_path, "trial_a", checkpoints=2, final=True)
    write_manifest(original / "checkpoint_000001")
    copy = original / "checkpoint_000002"
    (copy / "final").mkdir(parents=True)
    (copy / "final" / "result.json").write_text('{"epochs": []}')  # the rest not there yet
    (copy / "robprune-manifest.json").write_text('{"progress.json": 2, "trial_state.pt": 9}')
    (original / END_MARKER).write_text(json.dumps({"status": "TERMINATED"}))
    answer, _, _ = _wait(original, _trial(tmp_path, "trial_b"))
    assert answer.checkpoint == f"{original}/checkpoint_000001", answer
