"""The search machinery's own cost per search and per trial, fitted to measurements.

`benchmarks/bench_scale.py` runs robprune's real search with the trials' compute replaced by a
stand-in and records, per run, the driver's CPU seconds: Tune's loop, the searcher, the
callbacks, snapshots and the export, all in one process, so one trial after another whatever
the concurrency. `fit` finds `search_s + trials * driver_s` by least squares over the recorded
runs (`benchmarks/results/bench_scale.jsonl`); `FITTED` is its answer, and the plan adds
`driver_s` per trial to the wall time (an upper side: on a real search the driver's work
overlaps the trials' compute). The benchmark's wall-time overhead is not used: on the 2-core
machine it measures 16 workers sharing 2 cores more than the machinery. A trial's own
reports and checkpoints on its worker are costed per epoch (`search.plan.estimate.OVERHEAD`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Overhead", "FITTED", "fit"]


@dataclass(frozen=True)
class Overhead:
    """Driver seconds: once per search, and per trial."""

    search_s: float
    driver_s: float

    def driver_seconds(self, trials: int) -> float:
        """The driver's seconds for a search of `trials` trials."""
        return self.search_s + max(0, trials) * self.driver_s


def fit(runs: Iterable[dict[str, Any]]) -> Overhead:
    """Least squares of each run's driver CPU seconds on (1, trials), neither below zero
    (runs on local storage: object storage adds its own uploads)."""
    from scipy.optimize import nnls

    rows = [
        r
        for r in runs
        if r.get("storage", "local") == "local"
        and r.get("driver_cpu_per_trial_s") is not None
        and r.get("size")
    ]
    if len({r["size"] for r in rows}) < 2:
        raise ValueError("runs of at least 2 sizes are needed to fit the per-trial figure")
    design = np.array([[1.0, float(r["size"])] for r in rows])
    target = np.array([r["driver_cpu_per_trial_s"] * r["size"] for r in rows])
    (search_s, driver_s), _ = nnls(design, target)
    return Overhead(search_s=round(float(search_s), 2), driver_s=round(float(driver_s), 4))


#: `fit` of `benchmarks/results/bench_scale.jsonl`: refit when the benchmark is run again.
FITTED = Overhead(search_s=0.0, driver_s=0.0787)
