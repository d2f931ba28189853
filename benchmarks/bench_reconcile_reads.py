"""Reconciliation's reads of a killed search's trial directories: as it read before (one
directory after another, every file of each) against now
(`search.run.trial_record.read_records`), on S3 (moto on loopback) and on local disk.

    python benchmarks/bench_reconcile_reads.py --sizes 200,1000 [--storage s3,local] [--json]

A resume reconciles every trial of Tune's last snapshot from its directory before anything
runs (`search/run/reconcile.py`). This writes `size` trial directories laid out as a search
leaves them (two checkpoints, a `final/` result, an end marker, Tune's files), as a snapshot
taken at a kill sees them: all finished but `--running` (unfinished in the snapshot), and
times, in the same run, the baseline (each directory's listing, end marker, final result and
result.json, one directory after another: four round trips a trial) and `read_records` (READERS
directories at a time; of a trial the snapshot finished, its listing and end marker only); the
median of `--repeats`. moto is one Python process: its requests share the machine's cores with
everything else, so on a real bucket (network latency, not CPU, per request) the gain of
reading several at a time is the larger one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import pyarrow.fs as pafs  # noqa: E402
from scale_moto import start_moto  # noqa: E402

from search.run import trial_record  # noqa: E402
from search.run.end_marker import END_MARKER, marker_text  # noqa: E402
from search.state import storage  # noqa: E402
from search.state.trial_files import FINAL_DIR, RESULT_FILE  # noqa: E402

#: What one finished trial's directory holds (path under it -> bytes), as a search leaves it.
ROW = {
    "epoch": 1,
    "robust_acc": 0.41,
    "clean_acc": 0.83,
    "train_loss": 0.52,
    "time_this_iter_s": 1,
}


def _trial_files() -> dict[str, bytes]:
    rows = "".join(json.dumps({**ROW, "epoch": e}) + "\n" for e in (1, 2)).encode()
    files = {"params.json": b"{}", "result.json": rows, "progress.csv": b"epoch\n1\n2\n"}
    for n in (0, 1):
        for name in ("progress.json", "robprune-manifest.json", "standin.json"):
            files[f"checkpoint_00000{n}/{name}"] = b'{"epoch": %d}' % n
    final = {"metrics": {"epochs_completed": 2}, "epochs": [ROW, {**ROW, "epoch": 2}]}
    files[f"checkpoint_000001/{FINAL_DIR}/{RESULT_FILE}"] = json.dumps(final).encode()
    files[END_MARKER] = marker_text("TERMINATED", ROW, ["robust_acc"]).encode()
    return files


def _write(fs: pafs.FileSystem, run_path: str, size: int) -> list[str]:
    dirs = [f"{run_path}/trial_{i:05d}" for i in range(size)]
    files = _trial_files()

    def one(directory: str) -> None:
        for name, data in files.items():
            if isinstance(fs, pafs.LocalFileSystem):
                fs.create_dir(f"{directory}/{name}".rsplit("/", 1)[0], recursive=True)
            with fs.open_output_stream(f"{directory}/{name}") as out:
                out.write(data)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, dirs))
    return dirs


def _timed(read: Callable[[], list[Any]], repeats: int) -> float:
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        found = read()
        seconds.append(time.perf_counter() - start)
        assert all(r.final and r.marker and r.rows for r in found), "a record was not read"
    return statistics.median(seconds)


def _compare(fs: pafs.FileSystem, dirs: list[str], running: int, repeats: int) -> dict:
    """The baseline (every file, one directory after another) and `read_records`, same run."""
    settled = [i < len(dirs) - running for i in range(len(dirs))]
    before = _timed(lambda: [trial_record.read_record(fs, d) for d in dirs], repeats)
    now = _timed(lambda: trial_record.read_records(fs, dirs, settled), repeats)
    return {"before_s": round(before, 3), "now_s": round(now, 3), "ratio": round(before / now, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000", help="trial directories")
    parser.add_argument("--storage", default="s3,local", help="s3 (moto) and/or local")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per setting")
    parser.add_argument("--running", type=int, default=4, help="trials unfinished at the kill")
    parser.add_argument("--json", action="store_true", help="print one JSON line at the end")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = args.storage.split(",")
    if (
        min(sizes) < 2
        or args.repeats < 1
        or not 0 <= args.running < min(sizes)
        or not set(kinds) <= {"s3", "local"}
    ):
        print("bench_reconcile_reads.py: error: --sizes >= 2, --repeats >= 1, 0 <= --running "
              "< the smallest size, --storage s3 and/or local", file=sys.stderr)  # fmt: skip
        return 2
    rows, moto = [], None
    with tempfile.TemporaryDirectory(prefix="robprune-reads-") as work:
        try:
            for kind in kinds:
                if kind == "s3":
                    moto, uri = start_moto(os.environ)  # its credentials
                    fs, base = storage.filesystem(uri)
                else:
                    fs, base = pafs.LocalFileSystem(), work
                for size in sizes:
                    dirs = _write(fs, f"{base}/tune-{size}/run-000", size)
                    row = {"storage": kind, "trials": size, "readers": trial_record.READERS}
                    rows.append(row | _compare(fs, dirs, args.running, args.repeats))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                if moto is not None:
                    moto.terminate()
                    moto.wait(timeout=30)
                    moto = None
        finally:
            if moto is not None:
                moto.terminate()
                moto.wait(timeout=30)
    readers = trial_record.READERS
    print(f"| storage | trial directories | before | now ({readers} at a time) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['storage']} | {r['trials']:,} | {r['before_s']:.2f} s "
              f"| {r['now_s']:.2f} s | {r['ratio']:.1f}x |")  # fmt: skip
    if args.json:
        print(json.dumps({"runs": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
