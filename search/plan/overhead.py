"""What the search machinery adds to a search's wall time, beyond the trials' own compute.

A small model fitted to `benchmarks/bench_scale.py` (robprune's real search with the trials'
compute replaced by a stand-in, so that the wall time beyond the stand-in's ideal makespan is
the machinery's): `search_s + trials * (driver_s + worker_s / concurrency)`. `driver_s` is the
driver's own bookkeeping per trial (Tune's loop, the searcher, callbacks, snapshots), done one
trial after another whatever the concurrency; `worker_s` is a trial's start, reports and
checkpoints on its worker, which run side by side. `search_s` is what a search pays once in
the benchmark (Tune's start, the dense stage's tasks, the end); starting Ray is not in it.
The recorded runs are `benchmarks/results/bench_scale.jsonl`; `fit` gives `FITTED` from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Overhead", "FITTED", "fit"]


@dataclass(frozen=True)
class Overhead:
    """Seconds of machinery: once per search, per trial in the driver, per trial on a worker."""

    search_s: float
    driver_s: float
    worker_s: float

    def wall_s(self, trials: int, concurrency: int) -> float:
        """What the machinery adds to the wall time of `trials` trials, `concurrency` at once."""
        per_trial = self.driver_s + self.worker_s / max(1, concurrency)
        return self.search_s + max(0, trials) * per_trial


def fit(runs: Iterable[dict[str, Any]]) -> Overhead:
    """Least squares of each run's wall minus ideal on (1, trials, trials / concurrency),
    no coefficient below zero (runs of local storage on one node only)."""
    from scipy.optimize import nnls

    rows = [
        r
        for r in runs
        if r.get("storage") == "local" and r.get("nodes", 1) == 1 and r.get("wall_s") is not None
    ]
    if len(rows) < 3:
        raise ValueError(f"{len(rows)} runs: at least 3 are needed to fit 3 figures")
    design = np.array(
        [[1.0, r["size"], r["size"] / max(1, r.get("concurrency", 16))] for r in rows]
    )
    target = np.array([r["wall_s"] - r["ideal_s"] for r in rows])
    (search_s, driver_s, worker_s), _ = nnls(design, target)
    return Overhead(
        search_s=round(float(search_s), 2),
        driver_s=round(float(driver_s), 4),
        worker_s=round(float(worker_s), 4),
    )


#: `fit(benchmarks/results/bench_scale.jsonl)`, refitted when the benchmark is run again.
FITTED = Overhead(search_s=54.6, driver_s=0.1454, worker_s=0.0)
