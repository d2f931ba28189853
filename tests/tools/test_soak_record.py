"""The kill tests' verdict (`tools/soak_record.py`): a restart is told from Tune's whole-second
timestamps without counting a report from the second the kill was seen in."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.support.paths import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from soak_record import TrialAtKill, _trained_again  # noqa: E402


def _trial(exp: Path, rows: list[tuple[int, int]]) -> None:
    trial = exp / "tune" / "run-001" / "trial_t1"
    trial.mkdir(parents=True)
    lines = [json.dumps({"epoch": e, "timestamp": s}) for e, s in rows]
    (trial / "result.json").write_text("\n".join(lines) + "\n")


def test_a_report_from_the_kills_own_second_is_not_a_restart(tmp_path):
    # epoch 1 reported at 100.2 s, epoch 2 checkpointed, the kill seen at 100.7 s
    _trial(tmp_path, [(1, 100)])
    assert not _trained_again(tmp_path, "t1", TrialAtKill(False, 2, 0, seen_at=100.7))


def test_an_earlier_epoch_reported_after_the_kill_is_a_restart(tmp_path):
    _trial(tmp_path, [(1, 100), (1, 104), (2, 104)])
    assert _trained_again(tmp_path, "t1", TrialAtKill(False, 2, 0, seen_at=100.7))


def test_a_continuation_past_the_checkpoint_is_not_a_restart(tmp_path):
    _trial(tmp_path, [(1, 100), (3, 104)])
    assert not _trained_again(tmp_path, "t1", TrialAtKill(False, 2, 0, seen_at=100.7))
