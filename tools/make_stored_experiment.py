"""Make the stored experiments that `tests/system/test_stored_experiment.py` resumes.

Runs a small search with another robprune checkout (`--code`, e.g. a `git worktree` of an
older commit), SIGKILLs its driver once one trial has finished and another is mid-fine-tuning
(others still pending), ends the killed driver's Ray, and packs the experiment. The
experiment lives at a fixed path (`FOLDER`), where the test unpacks it again: Tune keeps
absolute paths in its snapshot.

    python tools/make_stored_experiment.py --code ../old-checkout --mode grid \
        --out tests/data/stored-grid.tar.gz
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from search.run.ownership import session_processes  # noqa: E402
from tests.support.trials import fast_trial  # noqa: E402

#: Where the stored experiments are made and unpacked.
FOLDER = Path("/tmp/robprune-stored-experiment")
CRITERIA = ["l1", "random", "l2", "fpgm"]


def spec(mode: str) -> dict:
    raw = fast_trial(
        "unused",
        data={"dataset": "digits", "train_limit": 300},
        dense={"epochs": 2},
        prune={"criterion": {"choice": CRITERIA}},
        finetune={"method": "pgd_at", "epochs": 12},
    )
    raw.pop("cache_dir")
    search = {"mode": mode, "max_concurrent": 2}
    if mode != "grid":  # TPE over criterion and learning rate, every trial to its end
        search.update(num_samples=len(CRITERIA), sampler="tpe", scheduler="none")
        raw["finetune"]["lr"] = {"loguniform": [0.005, 0.02]}
    raw.update(name=mode, storage=str(FOLDER), search=search, resources={"cpu": 1})
    return raw


def _state(tune_dir: Path) -> tuple[int, int, int]:
    """(finished, mid-fine-tuning, started) trials."""
    done = mid = started = 0
    for trial in tune_dir.glob("trial_*"):
        ckpts = list(trial.glob("checkpoint_*"))
        started += bool(ckpts)
        if any((c / "final").exists() for c in ckpts):
            done += 1
        elif any(c.name >= "checkpoint_000002" for c in ckpts):
            mid += 1
    return done, mid, started


def make(code: Path, mode: str, out: Path) -> None:
    exp = FOLDER / mode
    shutil.rmtree(exp, ignore_errors=True)
    FOLDER.mkdir(parents=True, exist_ok=True)
    spec_path = FOLDER / f"{mode}.yaml"
    spec_path.write_text(yaml.safe_dump(spec(mode)))
    env = {**os.environ, "PYTHONPATH": str(code), "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    cmd = [sys.executable, "-m", "robprune.cli", "search", str(spec_path), "--name", mode]
    driver = subprocess.Popen(cmd, env=env, cwd=code, stdout=subprocess.DEVNULL)
    tune_dir = exp / "tune" / "run-000"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and driver.poll() is None:
        done, mid, started = _state(tune_dir) if tune_dir.exists() else (0, 0, 0)
        if done >= 1 and mid >= 1 and started < len(CRITERIA):
            break
        time.sleep(0.05)
    state = _state(tune_dir)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    ray_dir = json.loads((exp / "driver.json").read_text())["ray_temp_dir"]
    for pid in session_processes(ray_dir):
        os.kill(pid, signal.SIGKILL)
    with tarfile.open(out, "w:gz") as tar:
        tar.add(exp, arcname=mode)
    print(f"{out}: killed at (finished, mid, started) = {state}; {out.stat().st_size} bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, required=True, help="the robprune checkout to run")
    parser.add_argument("--mode", choices=("grid", "optimize"), default="grid")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    make(args.code.resolve(), args.mode, args.out.resolve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
