"""The search machinery's own cost per search and per trial, fitted to measurements.

`benchmarks/bench_scale.py` runs robprune's real search with the trials' compute replaced by a
stand-in and records, per run, the driver's CPU seconds: Tune's loop, the searcher, the
callbacks, snapshots and the export, all in one process, so one trial after another whatever
the concurrency. `fit` finds `search_s + trials * driver_s + trials^2 * growth_s` by
non-negative least squares over the recorded runs (`benchmarks/results/bench_scale.jsonl`);
`FITTED` is its answer, and the plan adds it to the wall time (an upper side: on a real
search the driver's work overlaps the trials' compute). The square term is there because the
measurements have one: the driver's seconds per trial grow with the trials already in the run
(Tune's controller and the searcher look at every trial on each event), which a constant per
trial fitted on small runs would hide. The benchmark's wall-time overhead is not used: on the
2-core machine it measures 16 workers sharing 2 cores more than the machinery. A trial's own
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
    """Driver seconds: once per search, per trial, and per trial per trial already run."""

    search_s: float
    driver_s: float
    growth_s: float = 0.0

    def driver_seconds(self, trials: int) -> float:
        """The driver's seconds for a search of `trials` trials."""
        n = max(0, trials)
        return self.search_s + n * self.driver_s + n * n * self.growth_s


def fit(runs: Iterable[dict[str, Any]]) -> Overhead:
    """Least squares of each run's driver CPU seconds on (1, trials, trials^2), none below
    zero (runs on local storage: object storage adds its own uploads)."""
    from scipy.optimize import nnls

    rows = [
        r
        for r in runs
        if r.get("storage", "local") == "local"
        and r.get("driver_cpu_per_trial_s") is not None
        and r.get("size")
    ]
    if len({r["size"] for r in rows}) < 3:
        raise ValueError("runs of at least 3 sizes are needed to fit the driver's overhead")
    design = np.array([[1.0, float(r["size"]), float(r["size"]) ** 2] for r in rows])
    target = np.array([r["driver_cpu_per_trial_s"] * r["size"] for r in rows])
    (search_s, driver_s, growth_s), _ = nnls(design, target)
    return Overhead(
        search_s=round(float(search_s), 2),
        driver_s=round(float(driver_s), 4),
        growth_s=float(f"{growth_s:.3g}"),
    )


#: `fit` of `benchmarks/results/bench_scale.jsonl`: refit when the benchmark is run again.
FITTED = Overhead(search_s=1.87, driver_s=0.0417, growth_s=1.63e-05)
