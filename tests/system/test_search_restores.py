"""A trial restored again and again never fails for being restored.

Each restore runs where `prims::sign does not exist` struck once: a fresh Ray worker process
that unpickles the trainable, is handed a checkpoint and starts Tune's trainable thread, which
imports the trial's stack. Here the trial's actor process is SIGKILLed (a lost node, as
Ray sees it: `search.max_failures` retries the trial from its last epoch checkpoint in a new
process) twenty times in all, each time once the restored trial has written a new
checkpoint, so every kill is recorded as a restore. The trial must end TERMINATED with its
restores counted.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.support.paths import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from soak_record import newest_checkpoints, session_of  # noqa: E402
from soak_resume import Driver, soak_spec  # noqa: E402

pytest.importorskip("ray")
RESTORES = 20


def _trial_actors(ray_dir: str) -> list[int]:
    """PIDs of the trials' actor processes (Ray names them after the trainable's class)."""
    from search.run.ownership import session_processes

    out = []
    for pid in session_processes(ray_dir):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::ImplicitFunc"):
            out.append(pid)
    return out


def test_twenty_restores_never_fail(tmp_path):
    # outlasts the kills: a trial can run several short epochs between two of them
    spec = soak_spec(str(tmp_path / "exps"), "grid", epochs=6 * RESTORES)
    spec["prune"] = {"sparsity": 0.3, "criterion": "l1", "ratio": "uniform"}  # one trial
    spec["search"]["max_failures"] = RESTORES + 5
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    exp = tmp_path / "exps" / "r"
    driver = Driver.start(["search", str(spec_path), "--name", "r"], tmp_path / "driver.log")
    kills, seen = 0, set()
    deadline = time.monotonic() + 900
    while kills < RESTORES and driver.running() and time.monotonic() < deadline:
        fresh = newest_checkpoints(exp) - seen
        actors = _trial_actors(session_of(exp) or "/nonexistent") if fresh else []
        if not actors:
            time.sleep(0.2)
            continue
        seen |= newest_checkpoints(exp)
        for pid in actors:
            os.kill(pid, signal.SIGKILL)
        kills += 1
    assert kills == RESTORES, (kills, driver.text()[-3000:])
    assert driver.finish(timeout=900) == 0, driver.text()[-4000:]
    assert "prims::" not in driver.text()
    trials = pq.read_table(exp / "results" / "trials.parquet").to_pylist()
    assert [t["status"] for t in trials] == ["TERMINATED"], trials
    assert trials[0]["restores"] >= RESTORES - 2, trials  # a kill may land before a report
