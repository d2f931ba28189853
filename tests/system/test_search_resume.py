"""Kill the driver of a grid search (no ASHA) with SIGKILL mid-fine-tuning, then resume.

Only the driver is killed: the resume must end the Ray processes it left behind. Every trial
must end exactly once in the results, and a trial that was mid-fine-tuning must continue from
its last checkpointed epoch rather than from zero, even when Tune's snapshot predates that
checkpoint (the resume reconciles it with the trial directories).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from search.run.ownership import session_processes
from tests.support.trials import fast_trial

EPOCHS = 8


def _spec(storage: Path) -> dict:
    spec = fast_trial(
        "unused",
        data={"dataset": "digits", "train_limit": 400},
        dense={"epochs": 3},
        prune={"criterion": {"choice": ["l1", "random", "l2"]}},
        finetune={"method": "pgd_at", "epochs": EPOCHS},
    )
    spec.pop("cache_dir")
    spec.update(
        name="killed",
        storage=str(storage),
        search={"mode": "grid", "max_concurrent": 2},
        resources={"cpu": 1},
    )
    return spec


def _mid_finetune(tune_dir: Path) -> dict[str, float]:
    """Trials with at least 2 epochs checkpointed and no final result yet -> newest mtime."""
    out = {}
    for trial in sorted(tune_dir.glob("trial_*")):
        try:
            ckpts = sorted(trial.glob("checkpoint_*"))
            if any(c.name >= "checkpoint_000001" for c in ckpts) and not any(
                (c / "final").exists() for c in ckpts
            ):
                out[trial.name] = max(c.stat().st_mtime for c in ckpts)
        except FileNotFoundError:  # Tune deleted an old checkpoint meanwhile
            continue
    return out


def test_sigkill_driver_then_resume(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(tmp_path / "exps")))
    env = {
        **os.environ,
        "TUNE_GLOBAL_CHECKPOINT_S": "1",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = [sys.executable, "-m", "cli"]
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        [*cmd, "search", str(spec_path), "--name", "killed"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    exp_dir = tmp_path / "exps" / "killed"
    tune_dir = exp_dir / "tune" / "run-000"
    deadline = time.monotonic() + 240
    mid: dict[str, float] = {}
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            mid = _mid_finetune(tune_dir) if tune_dir.exists() else {}
            if mid:
                break
            time.sleep(0.05)
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        mid = _mid_finetune(tune_dir)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        log.close()
    ray_dir = json.loads((exp_dir / "driver.json").read_text())["ray_temp_dir"]
    assert ray_dir  # the driver recorded its own Ray before starting it
    assert mid, "the trial finished before the kill; make fine-tuning longer"

    resumed = subprocess.run(
        [*cmd, "resume", str(exp_dir)], env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert session_processes(ray_dir) == []  # the resume ended the dead driver's Ray
    assert not session_processes(json.loads((exp_dir / "driver.json").read_text())["ray_temp_dir"])

    trials = pq.read_table(exp_dir / "results" / "trials.parquet").to_pylist()
    assert sorted(t["criterion"] for t in trials) == ["l1", "l2", "random"]
    assert len({t["trial_id"] for t in trials}) == 3
    assert all(t["status"] == "TERMINATED" and t["epochs_completed"] == EPOCHS for t in trials)
    epochs = pq.read_table(exp_dir / "results" / "epochs.parquet").to_pylist()
    for t in trials:
        assert sorted(e["epoch"] for e in epochs if e["trial_id"] == t["trial_id"]) == list(
            range(1, EPOCHS + 1)
        )
    for name in mid:
        rows = [
            json.loads(line)
            for line in (tune_dir / name / "result.json").read_text().splitlines()
            if line.strip().startswith("{")
        ]
        restarts = [r["epoch"] for r in rows if r.get("iterations_since_restore") == 1]
        # The first start's rows may be cut from result.json by the SIGKILL (Ray 2.60 does);
        # the restart after the resume is always there and must not be from epoch 1.
        assert restarts and restarts[:-1] in ([], [1]), restarts
        assert restarts[-1] > 1, f"{name} restarted from zero: {restarts}"
        row = next(t for t in trials if f"trial_{t['trial_id']}" == name)
        assert row["restores"] == 1 and row["restored_from_epoch"] == restarts[-1] - 1
