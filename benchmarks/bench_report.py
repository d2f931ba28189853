"""Benchmark: `robprune report` over 100,000 trial rows (target: at most 10 s on 2 cores).

Generates a search-like experiment (unbalanced; lr, epochs, temperature and beta sampled
continuously; 10 epochs and 5 layers per trial), then times the real command end to end in a
fresh interpreter (imports included), and the in-process steps separately.

    .venv/bin/python benchmarks/bench_report.py [--trials 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tests.support.analysis_tables import (  # noqa: E402
    epochs_for,
    layers_for,
    planted_trials,
    write_experiment,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--keep", default=None, help="write the experiment and report here")
    args = parser.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_report_"))
    shares = {"finetune_method": 0.6, "criterion": 0.05, "sparsity_target": 0.1}
    start = time.perf_counter()
    trials = planted_trials(shares, balanced=False, n=args.trials, search=True, failed=100)
    results = write_experiment(
        work / "experiment",
        trials,
        epochs=epochs_for(trials, epochs=10),
        layers=layers_for(trials),
    )
    print(f"generated {len(trials):,} trials in {time.perf_counter() - start:.1f} s")

    command = [
        sys.executable,
        "-m",
        "cli",
        "report",
        str(results),
        "-o",
        str(work / "report"),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        print(done.stdout, done.stderr)
        return 1
    print(done.stdout.strip())
    print(
        f"robprune report, {len(trials):,} trials, end to end: {elapsed:.2f} s wall, "
        f"{cpu:.2f} s CPU (target <= 10 s on 2 cores; {os.cpu_count()} cores here, "
        f"load {os.getloadavg()[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
