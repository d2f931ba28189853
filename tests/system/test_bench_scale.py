"""`benchmarks/bench_scale.py` at its smallest size, so the stand-in path cannot rot.

A real local Ray, robprune's real search machinery, and the stand-in compute installed only
through Ray's worker setup hook: every trial completes, each measure is present and sane, and
the hook refuses to patch anything but the trainable's real `run_trial`.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.paths import ROOT

MEASURES = (
    "overhead_per_trial_s",
    "driver_cpu_per_trial_s",
    "suggest_p99_ms",
    "journal_bytes",
    "bytes_pushed",
    "resume_s",
    "export_s",
    "report_s",
    "driver_peak_mb",
)


def test_smallest_size_runs_the_real_machinery():
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_scale.py"),
        "--sizes", "3",
        "--modes", "optimize,grid",
        "--storage", "local",
        "--cpus", "3",
        "--concurrency", "3",
        "--no-interrupt",
        "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])["runs"]
    assert {r["mode"] for r in runs} == {"optimize", "grid"}
    for run in runs:
        assert run["completed"] == 3 and run["failed"] == 0, run
        assert all(key in run for key in MEASURES), run
        assert run["driver_peak_mb"] > 100 and run["bytes_pushed"] > 0
    optimize = next(r for r in runs if r["mode"] == "optimize")
    assert optimize["journal_bytes"] > 0 and optimize["suggest_p99_ms"] is not None


def test_the_hook_patches_only_the_real_run_trial():
    """The stand-in refuses to install over anything but robprune.trial.run_trial."""
    script = (
        "import sys; sys.path[:0] = [{root!r}, {bench!r}]\n"
        "import search.run.trainable as t, scale_standin as s\n"
        "from robprune.trial import run_trial\n"
        "s.install(); assert t.run_trial is s.standin_run_trial\n"
        "t.run_trial = print\n"
        "try:\n    s.install()\nexcept RuntimeError as e:\n    print('refused', e)\n"
    ).format(root=str(ROOT), bench=str(ROOT / "benchmarks"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused" in done.stdout
