"""Measure the verdict's error rates on simulated tables (the table in docs/analysis.md).

For each design of tests/support/calibration.py (balanced grid, unbalanced random design, ASHA-cut
grid), with no effect and with a 2-SD effect on the fine-tuning method or on the criterion:
how often the leading factor is called distinguishable from seed noise, how often a factor
without effect is named dominant, and (for the effects) how often the planted factor is named.
The test suite runs a shorter version (tests/analysis/test_calibration.py).

    .venv/bin/python tools/calibrate_analysis.py [--replicates 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from analysis.design import build_design  # noqa: E402
from analysis.shares import decompose  # noqa: E402
from tests.support.analysis_tables import planted_trials  # noqa: E402
from tests.support.calibration import DESIGNS, run_verdict, simulate  # noqa: E402

#: The planted shares of the interval check (tests/analysis/test_analysis_core.py uses the same).
PLANTED = {"finetune_method": 0.60, "criterion": 0.05}

SCENARIOS = {
    "null": {},
    "method +2 SD": {"finetune_method": 2.0},
    "criterion +2 SD": {"criterion": 2.0},
    "method +1 SD": {"finetune_method": 1.0},
}


def intervals(tables: int) -> None:
    """Coverage of the 95% share intervals; for a factor without effect, lower bound > 0."""
    print("\n| design | factor (true share) | covered | lower bound > 0 | mean width |")
    print("|---|---|---|---|---|")
    for balanced in (True, False):
        hits: dict[str, list[tuple[bool, bool, float]]] = {}
        for i in range(tables):
            trials = planted_trials(PLANTED, balanced=balanced, seeds=3, n=400, rng=7000 + i)
            y = trials["robust_acc"].to_numpy()
            rng = np.random.default_rng(i)
            dec = decompose(y, build_design(trials), "robust_acc", 200, rng, reference=False)
            for j, name in enumerate(dec.factors):
                truth = PLANTED.get(name, 0.0)
                lo, hi = dec.lo[j], dec.hi[j]
                hits.setdefault(name, []).append((lo <= truth <= hi, lo > 0, hi - lo))
        for name, rows in hits.items():
            covered, positive, width = (np.mean([r[k] for r in rows]) for k in range(3))
            design = "grid (ANOVA)" if balanced else "random (Shapley)"
            truth = PLANTED.get(name, 0.0)
            print(
                f"| {design} | {name} ({truth:.2f}) | {covered:.3f} | {positive:.3f} "
                f"| {width:.3f} |"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=300)
    parser.add_argument("--tables", type=int, default=300, help="for the interval check")
    args = parser.parse_args()
    print(
        "| design | planted | distinguishable | zero-effect factor named dominant "
        "| planted factor named dominant |"
    )
    print("|---|---|---|---|---|")
    start = time.perf_counter()
    for design in DESIGNS:
        for label, effects in SCENARIOS.items():
            called = wrong = right = 0
            for r in range(args.replicates):
                rng = np.random.default_rng(100_000 + r)
                verdict = run_verdict(*simulate(design, effects, rng), rng)
                named = verdict.dominant.split("+")[0] if verdict.dominant else None
                called += verdict.distinguishable
                wrong += named is not None and named not in effects
                right += named is not None and named in effects
            n = args.replicates
            planted = f"{right / n:.3f}" if effects else "-"
            print(f"| {design} | {label} | {called / n:.3f} | {wrong / n:.3f} | {planted} |")
    print(f"\n{args.replicates} replicates per row, {time.perf_counter() - start:.0f} s")
    intervals(args.tables)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
