"""Ray's overhead: the same N short trials run directly versus through `robprune search`.

    python benchmarks/bench_ray_overhead.py --trials 8

Both sides run the same trial configs (a grid over sparsity targets on digits, small CNN), one
at a time with one CPU thread each, against a dense model trained beforehand, so the difference
is what Ray Tune adds: starting Ray, actors, per-epoch reports and checkpoints, experiment
snapshots, the Parquet/TensorBoard export. A second search run with two concurrent trials
shows what that overhead buys on a 2-core machine. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _spec_raw(n: int, cache_dir: str, storage: str, concurrency: int, epochs: int) -> dict:
    sparsities = [round(0.3 + 0.5 * i / max(1, n - 1), 4) for i in range(n)]
    return {
        "name": "bench",
        "seed": 0,
        "device": "cpu",
        "cache_dir": cache_dir,
        "data": {"dataset": "digits", "train_limit": 600},
        "model": {"arch": "small_cnn", "width": 0.5},
        "dense": {"method": "pgd_at", "epochs": 3, "batch_size": 64},
        "threat": {"train_steps": 3, "eval_steps": 5},
        "prune": {"sparsity": {"choice": sparsities}, "criterion": "l1"},
        "finetune": {"method": "pgd_at", "epochs": epochs, "batch_size": 64},
        "eval": {
            "attacks": ["fgsm", "pgd5"],
            "primary": "pgd5",
            "epoch_attack": "pgd3",
            "epoch_subset": 144,
            "test_limit": 200,
        },
        "search": {"mode": "grid", "max_concurrent": concurrency},
        "resources": {"cpu": 1},
        "storage": storage,
    }


def _measure(n: int, epochs: int, work: Path, devnull) -> dict:
    from robprune.trial import run_trial
    from search.run.runner import run_search
    from search.spec.grid import grid_configs
    from search.spec.parse import parse_spec

    cache = str(work / "cache")
    specs = [
        parse_spec(
            _spec_raw(n, cache, str(work / "exps"), c, epochs),
            name=f"bench-{n}-{c}",
            storage=str(work / "exps"),
        )
        for c in (1, 2)
    ]
    configs = grid_configs(specs[0], cache)
    run_trial(configs[0])  # trains the dense model once; neither side pays for it below
    start = time.perf_counter()
    for config in configs:
        run_trial(config)
    direct_s = time.perf_counter() - start
    times = []
    for spec in specs:
        start = time.perf_counter()
        outcome = run_search(spec, stream=devnull)
        times.append(time.perf_counter() - start)
        assert outcome.completed == n, outcome
    return {
        "trials": n,
        "direct_s": round(direct_s, 2),
        "search_sequential_s": round(times[0], 2),
        "search_2_concurrent_s": round(times[1], 2),
        "ratio_sequential": round(times[0] / direct_s, 2),
        "ratio_2_concurrent": round(times[1] / direct_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,16", help="numbers of trials, comma-separated")
    parser.add_argument("--epochs", type=int, default=3, help="fine-tuning epochs per trial")
    args = parser.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]

    import ray
    import torch

    from search.run.session import connect

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="robprune-bench-"))
    devnull = open(os.devnull, "w")
    start = time.perf_counter()
    connect(None, num_cpus=2)
    init_s = time.perf_counter() - start
    rows = [_measure(n, args.epochs, work, devnull) for n in sizes]
    ray.shutdown()

    print(
        f"{args.epochs} fine-tuning epochs per trial, digits small_cnn (width 0.5), "
        f"{os.cpu_count()} cores; ray.init {init_s:.1f} s once, not included below"
    )
    print("| trials | direct s | search 1-at-a-time s (ratio) | search 2 concurrent s (ratio) |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['trials']} | {r['direct_s']:.1f} | {r['search_sequential_s']:.1f} "
            f"({r['ratio_sequential']:.2f}) | {r['search_2_concurrent_s']:.1f} "
            f"({r['ratio_2_concurrent']:.2f}) |"
        )
    summary: dict = {"ray_init_s": round(init_s, 2), "epochs": args.epochs, "runs": rows}
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        dn = b["trials"] - a["trials"]
        direct_per = (b["direct_s"] - a["direct_s"]) / dn
        search_per = (b["search_sequential_s"] - a["search_sequential_s"]) / dn
        fixed = a["search_sequential_s"] - a["trials"] * search_per
        summary.update(
            direct_per_trial_s=round(direct_per, 3),
            search_per_trial_s=round(search_per, 3),
            ray_overhead_per_trial_s=round(search_per - direct_per, 3),
            search_fixed_s=round(fixed, 2),
        )
        print(
            f"per trial: direct {direct_per:.2f} s, through search {search_per:.2f} s "
            f"(+{search_per - direct_per:.2f} s); fixed cost per search {fixed:.1f} s "
            "(dense-stage task, Tuner start, export)"
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
