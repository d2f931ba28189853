"""Kill the driver with SIGKILL mid-search, end the Ray processes it started, resume.

Every trial must end exactly once in the results, and a trial that was mid-fine-tuning must
continue from its last checkpointed epoch rather than from zero.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from trial_fixtures import fast_trial

EPOCHS = 30
_SESSION = re.compile(r"session_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_\d+_\d+")


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line), from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out[int(entry)] = (ppid, cmd)
    return out


def _descendants(root: int) -> set[int]:
    children = defaultdict(list)
    for pid, (ppid, _) in _processes().items():
        children[ppid].append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children[todo.pop()]:
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _kill_driver_and_its_ray(driver: subprocess.Popen) -> int:
    """SIGKILL the driver, then every process of the Ray session it started (by PID)."""
    tree = _descendants(driver.pid)
    procs = _processes()
    sessions = {
        m.group(0) for pid in tree for m in [_SESSION.search(procs.get(pid, (0, ""))[1])] if m
    }
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=30)
    _kill(tree)
    killed = set(tree)
    for _ in range(10):  # workers spawned in between were reparented: find them by session
        stragglers = {
            pid
            for pid, (_, cmd) in _processes().items()
            if any(s in cmd for s in sessions) and pid != os.getpid()
        }
        if not stragglers:
            break
        _kill(stragglers)
        killed |= stragglers
        time.sleep(0.5)
    assert sessions, "could not find the Ray session the driver started"
    return len(killed)


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
    """Trials with at least 3 epochs checkpointed and no final result yet -> newest mtime."""
    out = {}
    for trial in sorted(tune_dir.glob("trial_*")):
        try:
            ckpts = sorted(trial.glob("checkpoint_*"))
            if any(c.name >= "checkpoint_000002" for c in ckpts) and not any(
                (c / "final").exists() for c in ckpts
            ):
                out[trial.name] = max(c.stat().st_mtime for c in ckpts)
        except FileNotFoundError:  # Tune deleted an old checkpoint meanwhile
            continue
    return out


def _snapshot_after(tune_dir: Path, when: float) -> bool:
    """Whether Tune saved its experiment state after `when` (so it knows that checkpoint)."""
    try:
        return any(p.stat().st_mtime > when for p in tune_dir.glob("experiment_state-*.json"))
    except FileNotFoundError:
        return False


def test_sigkill_driver_then_resume(tmp_path):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(tmp_path / "exps")))
    env = {
        **os.environ,
        "TUNE_GLOBAL_CHECKPOINT_S": "1",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = [sys.executable, "-m", "robprune.cli"]
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
            if mid and _snapshot_after(tune_dir, min(mid.values())):
                break
            time.sleep(0.05)
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
        mid = _mid_finetune(tune_dir)
    finally:
        _kill_driver_and_its_ray(driver)
        log.close()
    assert mid, "the trial finished before the kill; make fine-tuning longer"

    resumed = subprocess.run(
        [*cmd, "resume", str(exp_dir)], env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

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
        assert len(restarts) == 2, restarts  # the first start, and the restart after resume
        assert restarts[1] > 1, f"{name} restarted from zero: {restarts}"
