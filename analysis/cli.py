"""`robprune report RESULTS... -o DIR [--response METRIC]`: entry point called by robprune.cli.

Imports only pandas/pyarrow/statsmodels/matplotlib (optuna when a study exists): never torch or
Ray, so it runs where they are absent. Bad input raises `BadInput` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import sys
import time

__all__ = ["main"]


def main(args: argparse.Namespace) -> int:
    """Build and write the report; print where it is and the verdict's headline."""
    from analysis.output import write_report
    from analysis.report import build_report

    start = time.perf_counter()
    report = build_report(list(args.results), response=args.response)
    index = write_report(report, args.output)
    elapsed = time.perf_counter() - start
    sys.stdout.write(f"{report.primary.verdict.headline}.\n")
    sys.stdout.write(f"report: {index} (and report.md, *.csv) in {elapsed:.1f} s\n")
    return 0
