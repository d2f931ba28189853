"""`robprune report RESULTS... [-o DIR] [--response METRIC] [--power]`, for the `cli` package.

Imports only pandas/pyarrow/statsmodels/matplotlib (optuna when a study exists): never torch or
Ray, so it runs where they are absent. Bad input raises `BadInput` (one line, exit 2).
Results and the output may be URIs (s3://...): see `analysis.read.remote`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from analysis.read.remote import is_uri, local_inputs, local_output
from robprune.errors import BadInput

__all__ = ["main"]


def default_output(results: list[str]) -> str:
    """The report's directory when -o is not given: beside the results it reads, in the
    experiment (EXPERIMENT/report for EXPERIMENT, EXPERIMENT/results or its trials.parquet)."""
    if len(results) != 1:
        raise BadInput(
            f"-o: {len(results)} results given; name the directory of their common report"
        )
    where = results[0].partition("?")[0].rstrip("/") or "/"
    if where.endswith(".parquet"):
        where = where.rpartition("/")[0] or "."
    if where.rpartition("/")[2] == "results":
        where = where.rpartition("/")[0] or "."
    return f"{where}/report"


def main(args: argparse.Namespace) -> int:
    """Build and write the report; print where it is and the verdict's headline."""
    from analysis.document import build, output  # pandas, statsmodels, matplotlib

    start = time.perf_counter()
    if args.output is None:
        args.output = default_output(list(args.results))
    with local_inputs(list(args.results)) as results, local_output(args.output) as out_dir:
        power = bool(getattr(args, "power", False))
        report = build.build_report(results, response=args.response, power=power)
        index = output.write_report(report, out_dir)
    if is_uri(args.output):  # uploaded from a temporary directory
        index = f"{args.output.partition('?')[0].rstrip('/')}/{Path(index).name}"
    elapsed = time.perf_counter() - start
    sys.stdout.write(f"{report.primary.verdict.headline}.\n")
    sys.stdout.write(f"report: {index} (and report.md, *.csv) in {elapsed:.1f} s\n")
    return 0
