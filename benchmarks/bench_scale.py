"""The search machinery from tens to thousands of trials, with a stand-in for the compute.

    python benchmarks/bench_scale.py --sizes 20,200,2000 --modes optimize,grid \
        --storage local,s3 [--sampler tpe] [--s3-listing moto|indexed] [--nodes K] [--cpus C] \
        [--json] [--plot DIR]
    python benchmarks/bench_scale.py --replot benchmarks/results/bench_scale.jsonl --plot DIR

Each (mode, storage, size) runs in a fresh process (`scale_measure.py`): robprune's real
search (spec parsing, the Tune run, `StudySearch` and dedupe, the trainable's bookkeeping,
checkpoints, end markers, the Optuna journal, durability pushes, the export, a resume and the
report) with only the trial's compute replaced, in Ray's workers, by `scale_standin.py` (it
sleeps `--epoch-s` per fine-tuning epoch and returns a real trial's result, moved per config).
How the stand-in is confined to this benchmark: it is installed by Ray's
`worker_process_setup_hook`, which only `scale_measure.py` passes to `ray.init`; the hook
replaces the one name the trainable calls (`search.run.trainable.run_trial`) and refuses to
run unless that name is the real `robprune.trial.run_trial`. No robprune module knows of it.

Measures per run: overhead per trial (wall minus the stand-in's ideal makespan, over trials),
driver CPU per trial, `suggest` latency p50/p99, the journal's size and time to open, the
bytes the driver wrote (files and sockets: /proc/self/io wchar, so S3 uploads count), the
resume of the finished experiment, the export, the report (a `robprune report` process) and
the driver's peak memory. `--nodes K` runs on a `ray.cluster_utils.Cluster` of K nodes, the
way Ray's own Tune tests simulate a cluster on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from scale_measure import spec_raw  # noqa: E402
from scale_moto import S3_LISTINGS, copy_bucket, start_moto  # noqa: E402
from scale_table import latest_runs, plot, print_table  # noqa: E402

from search.spec.settings import SAMPLERS  # noqa: E402

ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "OMP_NUM_THREADS": "1",
}
MODES = ("optimize", "grid")
STORAGES = ("local", "s3")


def _template(work: Path, cache_dir: str) -> str:
    """A real trial's result.json (the stand-in's shape): one real digits trial, run here."""
    from robprune.trial import run_trial
    from search.spec.grid import grid_configs
    from search.spec.parse import parse_spec

    case = {"name": "template", "cache_dir": cache_dir, "mode": "grid", "size": 1}
    case |= {"concurrency": 1, "epochs": 1}
    spec = parse_spec(spec_raw(case), name="template", storage=str(work / "template-exps"))
    result = run_trial(grid_configs(spec, cache_dir)[0])
    return str(result.write(work / "template") / "result.json")


def _run_case(case: dict[str, Any], env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    command = [sys.executable, str(BENCH / "scale_measure.py"), json.dumps(case)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:  # SIGTERM first: the child shuts its Ray down
        proc.terminate()
        out, err = proc.communicate(timeout=120)
    done = subprocess.CompletedProcess(command, proc.returncode, out.decode(), err.decode())
    if done.stderr.strip():
        print(done.stderr.strip()[-4000:], file=sys.stderr)
    found = {k: json.loads(line.removeprefix(f"{k} ")) for line in done.stdout.splitlines()
             for k in ("RESULT", "MEASURED") if line.startswith(f"{k} ")}  # fmt: skip
    if "RESULT" in found:
        return found["RESULT"]
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    why = f"{case['name']} failed (exit {done.returncode}): " + " | ".join(tail)
    if "MEASURED" in found:  # the full run's measures stand; the killed-driver part did not end
        print(f"the killed-driver resume did not end: {why}", file=sys.stderr)
        return {**found["MEASURED"], "resume_interrupted_s": f"not ended (exit {done.returncode})"}
    raise RuntimeError(why)


class UsageError(ValueError):
    """A bad argument: printed as one line naming it and what is allowed; exit code 2."""


def _names(value: str, flag: str, allowed: tuple[str, ...]) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in names if v not in allowed] or ([] if names else [value])
    if bad:
        raise UsageError(f"{flag}: {bad[0]!r} is not one of {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def _sizes(value: str) -> list[int]:
    try:
        sizes = [int(v) for v in value.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise UsageError(f"--sizes: {value!r} is not a comma-separated list of positive integers")
    return sizes


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20,200,2000", help="numbers of trials")
    parser.add_argument("--modes", default="optimize,grid", help="optimize and/or grid")
    parser.add_argument("--storage", default="local,s3", help="local and/or s3 (moto)")
    parser.add_argument(
        "--sampler", help=f"Optuna sampler of the optimize runs: {', '.join(SAMPLERS)} (tpe)"
    )
    parser.add_argument(
        "--s3-listing",
        default="moto",
        help="the S3 server's listings: moto (as moto has them: each walks every key of the "
        "bucket) or indexed (only the keys under the prefix, as S3's do: moto_indexed.py)",
    )
    parser.add_argument("--nodes", type=int, default=1, help="simulated nodes (1: local Ray)")
    parser.add_argument("--cpus", type=int, default=16, help="logical CPUs in all")
    parser.add_argument("--concurrency", type=int, default=16, help="search.max_concurrent")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs per trial")
    parser.add_argument("--epoch-s", type=float, default=0.05, help="stand-in seconds/epoch")
    parser.add_argument(
        "--timeout",
        type=float,
        default=7200,
        help="seconds per (mode, storage, size), the killed-driver resume included",
    )
    parser.add_argument(
        "--no-interrupt", action="store_true", help="skip the killed-driver resume measurement"
    )
    parser.add_argument(
        "--interrupt-only",
        action="store_true",
        help="only the killed-driver resume (the full run's measures left out)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the experiments (printed)")
    parser.add_argument("--json", action="store_true", help="print one JSON line at the end")
    parser.add_argument("--plot", type=Path, help="write bench_scale.png into this folder")
    parser.add_argument(
        "--replot", type=Path, nargs="+", help="table and plot of recorded --json lines only"
    )
    args = parser.parse_args(argv)
    if args.replot:
        return args
    args.sizes = _sizes(args.sizes)
    args.modes = _names(args.modes, "--modes", MODES)
    args.storage = _names(args.storage, "--storage", STORAGES)
    if args.sampler is not None:
        if args.sampler not in SAMPLERS:
            raise UsageError(f"--sampler: {args.sampler!r} is not one of {', '.join(SAMPLERS)}")
        if "optimize" not in args.modes:
            raise UsageError("--sampler: applies to --modes optimize, which is not asked for")
    for flag in ("nodes", "cpus", "concurrency", "epochs"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag}: must be at least 1, got {getattr(args, flag)}")
    for flag in ("epoch_s", "timeout"):
        if not getattr(args, flag) > 0:
            raise UsageError(
                f"--{flag.replace('_', '-')}: must be above 0, got {getattr(args, flag)}"
            )
    if args.s3_listing not in S3_LISTINGS:
        raise UsageError(
            f"--s3-listing: {args.s3_listing!r} is not one of {', '.join(S3_LISTINGS)}"
        )
    if args.s3_listing != "moto" and "s3" not in args.storage:
        raise UsageError("--s3-listing: applies to --storage s3, which is not asked for")
    if args.no_interrupt and args.interrupt_only:
        raise UsageError("--interrupt-only: cannot be combined with --no-interrupt")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = _arguments(argv)
    except UsageError as exc:
        print(f"bench_scale.py: error: {exc}", file=sys.stderr)
        return 2
    if args.replot:
        rows = latest_runs(args.replot)
        print_table(rows)
        if args.plot:
            print(f"plot: {plot(rows, args.plot)}")
        return 0
    os.environ.update(ENV)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)])}
    work = Path(tempfile.mkdtemp(prefix="robprune-scale-"))
    cache_dir = str(work / "cache")
    template = _template(work, cache_dir)
    moto, bucket, rows = None, "", []
    try:
        for storage_kind in args.storage:
            if storage_kind == "s3":
                moto, storage = start_moto(env, args.s3_listing)
                bucket = storage
                env["ROBPRUNE_WORK_DIR"] = str(work / "s3-work")
            else:
                storage = str(work / "exps")
            for mode in args.modes:
                for size in args.sizes:
                    name = f"{mode}-{storage_kind}-{size}"
                    case = {
                        "name": name, "mode": mode, "size": size, "storage": storage,
                        "storage_kind": storage_kind, "nodes": args.nodes, "cpus": args.cpus,
                        "concurrency": args.concurrency, "epochs": args.epochs,
                        "epoch_s": args.epoch_s, "template": template,
                        "cache_dir": cache_dir, "work": str(work / name),
                        "interrupt": not args.no_interrupt, "timeout": args.timeout,
                        "interrupt_only": args.interrupt_only,
                        "sampler": args.sampler or "tpe",
                    }  # fmt: skip
                    row = _run_case(case, env, args.timeout)
                    if storage_kind == "s3":
                        row["s3_listing"] = args.s3_listing
                    rows.append(row)
                    print(f"{name}: {json.dumps(row)}", file=sys.stderr, flush=True)
    finally:
        if moto is not None:
            if args.keep:  # the experiments live in moto's memory: copy them out first
                try:
                    print(f"bucket copied to {copy_bucket(bucket, work / 's3-bucket')}")
                except OSError as exc:
                    print(f"the bucket could not be copied: {exc}", file=sys.stderr)
            moto.terminate()
            moto.wait(timeout=30)
    print_table(rows)
    if args.plot:
        print(f"plot: {plot(rows, args.plot)}")
    if args.json:
        print(json.dumps({"runs": rows}))
    if args.keep:
        print(f"experiments kept under {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
