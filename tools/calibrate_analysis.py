"""Measure the headline's answer rates on simulated tables (the tables in docs/analysis.md).

For each design of tests/support/calibration.py and each planted truth (null, criterion only,
fine-tuning only, both with equal shares, interaction only): the share of tables getting each
headline answer, the share with a false claim and the share with the right answer. Then the
coverage of the share intervals on tests/support/analysis_tables.py tables. The test suite runs
a shorter version (tests/analysis/verdict/test_calibration.py).

    .venv/bin/python tools/calibrate_analysis.py [--replicates 200] [--tables 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from analysis.design.factorial import build_design  # noqa: E402
from analysis.stats.shares import decompose  # noqa: E402
from analysis.verdict.answer import ANSWERS  # noqa: E402
from tests.support.analysis_tables import PLANTED, planted_trials  # noqa: E402
from tests.support.calibration import (  # noqa: E402
    DESIGNS,
    RIGHT,
    SCENARIOS,
    false_claim,
    missed_interaction,
    run_verdict,
    simulate,
)

SHORT = {
    "finetune_dominates": "FT dom.",
    "criterion_dominates": "crit. dom.",
    "both": "both",
    "only_finetune": "only FT",
    "only_criterion": "only crit.",
    "neither": "neither",
    "interaction": "interaction",
    "cannot": "cannot",
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


def answers(replicates: int) -> None:
    """One row per design and truth: the rate of every answer, false claims, right answers."""
    names = [SHORT[a] for a in ANSWERS]
    print("| design | truth | " + " | ".join(names) + " | false claim | missed interaction "
          "| right |")  # fmt: skip
    print("|---|---|" + "---|" * (len(names) + 3))
    for design in DESIGNS:
        for label, effects in SCENARIOS.items():
            counts = dict.fromkeys(ANSWERS, 0)
            false = missed = right = 0
            for r in range(replicates):
                rng = np.random.default_rng(100_000 + r)
                result = run_verdict(*simulate(design, effects, rng), rng)
                counts[result.answer] += 1
                false += false_claim(result, effects)
                missed += missed_interaction(result, effects)
                right += result.answer == RIGHT[label]
            n = replicates
            cells = " | ".join(f"{counts[a] / n:.2f}" for a in ANSWERS)
            gone = f"{missed / n:.2f}" if "interaction" in effects else "-"
            print(f"| {design} | {label} | {cells} | {false / n:.2f} | {gone} | {right / n:.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--tables", type=int, default=100, help="for the interval check")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.replicates:
        answers(args.replicates)
        print(f"\n{args.replicates} tables per row, {time.perf_counter() - start:.0f} s")
    if args.tables:
        intervals(args.tables)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
