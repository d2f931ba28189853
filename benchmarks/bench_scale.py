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
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]

from scale_measure import spec_raw  # noqa: E402

from search.spec.settings import SAMPLERS  # noqa: E402

ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
    "OMP_NUM_THREADS": "1",
}
MODES = ("optimize", "grid")
STORAGES = ("local", "s3")
S3_LISTINGS = ("moto", "indexed")  # how the S3 server (moto) answers a listing
#: The columns of the table, in order (each a key of a measurement).
COLUMNS = (
    "overhead_per_trial_s",
    "driver_cpu_per_trial_s",
    "suggest_p50_ms",
    "suggest_p99_ms",
    "journal_bytes",
    "journal_open_s",
    "bytes_pushed_per_trial",
    "resume_s",
    "export_s",
    "report_s",
    "driver_peak_mb",
    "resume_interrupted_reconcile_s",
    "resume_first_trial_s",
)


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto(env: dict[str, str], listing: str = "moto") -> tuple[subprocess.Popen, str]:
    """A moto S3 server on loopback and the storage URI of a bucket in it. `listing`
    "indexed": moto with listings that read only the keys under their prefix, as S3's do
    (`moto_indexed.py`); "moto": moto as it is, whose listings walk the whole bucket."""
    import pyarrow.fs as pafs

    venv = Path(sys.executable).parent / "moto_server"  # the dev extra's, as the tests use
    server = [str(venv) if venv.exists() else shutil.which("moto_server") or "moto_server"]
    if listing == "indexed":
        server = [sys.executable, str(BENCH / "moto_indexed.py")]
    port = _free_port()
    proc = subprocess.Popen(
        [*server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    endpoint = f"http://127.0.0.1:{port}"
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    env.update(AWS_DEFAULT_REGION="us-east-1")
    fs = pafs.S3FileSystem(
        access_key="test",
        secret_key="test",
        region="us-east-1",
        scheme="http",
        endpoint_override=endpoint,
        allow_bucket_creation=True,
    )
    fs.create_dir("robprune")
    query = f"endpoint_override={endpoint}&scheme=http&region=us-east-1&allow_bucket_creation=true"
    return proc, f"s3://robprune/bench?{query}"


def _copy_bucket(storage: str, into: Path) -> Path:
    """Every object under the S3 storage URI, copied into a local folder."""
    import pyarrow.fs as pafs

    from search.state import storage as state_storage

    fs, path = state_storage.filesystem(storage)
    pafs.copy_files(
        path, str(into), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem()
    )
    return into


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


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _mode(r: dict[str, Any]) -> str:
    """A run's mode, with its sampler where not the default TPE (rows before `--sampler`: TPE)."""
    sampler = r.get("sampler")
    return r["mode"] if sampler in (None, "tpe") else f"{r['mode']} ({sampler})"


def _storage(r: dict[str, Any]) -> str:
    """A run's storage, with moto's listing where indexed (rows before `--s3-listing`: moto)."""
    listing = r.get("s3_listing")
    return r["storage"] if listing in (None, "moto") else f"{r['storage']} ({listing})"


def _key(r: dict[str, Any]) -> tuple:
    """What makes two recorded runs the same measurement (the later one replaces the earlier)."""
    return (_mode(r), _storage(r), r["nodes"], r.get("concurrency", 16), r["size"])


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["mode", "storage", "nodes", "concurrency", "trials", *COLUMNS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        cells = list(_key(r))
        cells += [r.get(c) for c in COLUMNS]
        print("| " + " | ".join(_fmt(c) for c in cells) + " |")


def plot(rows: list[dict[str, Any]], directory: Path) -> Path:
    """Each measure against the number of trials, log-log, one line per mode and storage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 5, figsize=(20, 10))
    for ax, column in zip(axes.flat, COLUMNS, strict=False):
        groups: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            if r.get(column) is not None and r[column] > 0:
                key = f"{_mode(r)}/{_storage(r)}/{r['nodes']}n/c{r.get('concurrency', 16)}"
                groups.setdefault(key, []).append((r["size"], r[column]))
        for key, points in sorted(groups.items()):
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=key)
        ax.set(xscale="log", yscale="log", title=column, xlabel="trials")
        sizes = sorted({r["size"] for r in rows})
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
    axes.flat[0].legend(fontsize=7)
    for ax in list(axes.flat)[len(COLUMNS) :]:
        ax.axis("off")
    fig.tight_layout()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "bench_scale.png"
    fig.savefig(path, dpi=80)
    return path


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The runs of a file of recorded `--json` lines, in order."""
    lines = path.read_text().splitlines()
    return [r for line in lines if line.strip() for r in json.loads(line)["runs"]]


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
        latest: dict[tuple, dict[str, Any]] = {}  # a size measured again: its latest run
        for r in (r for path in args.replot for r in read_runs(path)):
            if r.get("interrupt_only") and _key(r) in latest:  # its killed-driver measures only
                latest[_key(r)] = {**latest[_key(r)], **r}
            else:
                latest[_key(r)] = r
        rows = list(latest.values())
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
                moto, storage = _start_moto(env, args.s3_listing)
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
                    print(f"bucket copied to {_copy_bucket(bucket, work / 's3-bucket')}")
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
