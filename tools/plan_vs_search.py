"""How close `robprune plan` comes to a real search: counts and wall time, on this machine.

    python tools/plan_vs_search.py examples/digits-search.yaml [--set KEY=VALUE ...]

Runs `robprune plan --json` (calibrating first if needed: its time is not counted), then the
search itself (`robprune search`, a local Ray, into a temporary storage), timing the whole
command. Prints the planned and the run trial count, dense models, and the estimated against
the measured wall time with their ratio; per trial, the estimated mean against the measured
mean `wall_s` of trials.parquet. Exit 0 when the counts match.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _robprune(*argv: str, capture: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cli", *argv],
        cwd=ROOT,
        env=env,
        capture_output=capture,
        text=True,
        check=False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--keep", default=None, help="storage to keep (default: a temp dir)")
    args = parser.parse_args(argv)
    sets = [a for item in args.overrides for a in ("--set", item)]
    storage = args.keep or tempfile.mkdtemp(prefix="robprune-plan-vs-search-")
    sets += ["--set", f"cache_dir={storage}/cache"]
    _robprune("plan", args.spec, *sets)  # calibrate (cached), not timed
    start = time.perf_counter()
    planned = _robprune("plan", args.spec, *sets, "--json")
    plan_s = time.perf_counter() - start
    if planned.returncode != 0:
        print(planned.stderr, file=sys.stderr)
        return 2
    plan = json.loads(planned.stdout)
    start = time.perf_counter()
    run = _robprune("search", args.spec, *sets, "--storage", storage, "--name", "measured")
    wall = time.perf_counter() - start
    import pyarrow.parquet as pq

    rows = pq.read_table(f"{storage}/measured/results/trials.parquet").to_pylist()
    dense = list(Path(storage).glob("**/dense/*/meta.json"))
    trained = [r for r in rows if not r.get("repeat_of")]
    est = plan["cost"]["wall_seconds"]
    mean_est = plan["cost"]["mean_trial_seconds"]
    mean_run = sum(r["wall_s"] or 0 for r in trained) / max(1, len(trained))
    print(f"spec: {args.spec} {' '.join(args.overrides)}; search exit {run.returncode}")
    print(f"plan answered in {plan_s:.2f} s (a fresh process, cached calibration)")
    print(f"trials: planned {plan['trials']}, run {len(rows)} ({len(trained)} trained)")
    print(f"dense models: planned {len(plan['dense_models'])}, trained {len(dense)}")
    print(f"wall: estimated {est:.0f} s, measured {wall:.0f} s, ratio {est / wall:.2f}")
    print(f"mean trial: estimated {mean_est:.1f} s, measured {mean_run:.1f} s (wall_s)")
    fewest = plan["cost"]["if_apgd_ce_breaks_every_image"]
    if fewest is not None:  # the strong response's other extreme
        low, low_mean = fewest["wall_seconds"], fewest["mean_trial_seconds"]
        print(
            f"if APGD-CE breaks every image: wall {low:.0f} s (ratio {low / wall:.2f}), "
            f"mean trial {low_mean:.1f} s; strong_acc of the trials: "
            f"{_mean([r.get('strong_acc') for r in trained]):.3f} (mean)"
        )
    print(f"workers: {plan['workers']} ({plan['workers_why']}); storage {storage}")
    ok = plan["trials"] == len(rows) and len(plan["dense_models"]) == len(dense)
    return 0 if ok else 1


def _mean(values: list) -> float:
    numbers = [v for v in values if isinstance(v, int | float)]
    return sum(numbers) / len(numbers) if numbers else float("nan")


if __name__ == "__main__":
    raise SystemExit(main())
