"""The search machinery's own cost per search and per trial, fitted to measurements.

`benchmarks/bench_scale.py` runs robprune's real search with the trials' compute replaced by a
stand-in and records, per run, the driver's CPU seconds: Tune's loop, the searcher, the
callbacks, snapshots and the export, all in one process, so one trial after another. `fit`
finds `search_s + trials * (driver_s + (concurrency - 1) * concurrency_s) + trials^2 *
growth_s` by non-negative least squares over the recorded runs
(`benchmarks/results/bench_scale.jsonl`);
`FITTED` is its answer, and the plan adds it to the wall time (an upper side: on a real
search the driver's work overlaps the trials' compute). The square term is there because the
measurements have one: the driver's seconds per trial grow with the trials already in the run
(Tune's controller and the searcher look at every trial on each event), which a constant per
trial fitted on small runs would hide; the concurrency term because each step of Tune's loop
visits the trials running at once (runs at concurrency 4 and 16 differ). The benchmark's
wall-time overhead is not used: on the 2-core machine it measures 16 workers sharing 2 cores
more than the machinery. A trial's own reports and checkpoints on its worker are costed per
epoch (`search.plan.estimate.OVERHEAD`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Overhead", "FITTED", "fit"]


@dataclass(frozen=True)
class Overhead:
    """The driver's seconds of a search, in parts."""

    search_s: float
    """Once per search."""
    driver_s: float
    """Per trial, trials run one at a time."""
    growth_s: float = 0.0
    """Per trial, per trial already in the run."""
    concurrency_s: float = 0.0
    """Per trial, per other trial running beside it."""

    def driver_seconds(self, trials: int, concurrency: int = 1) -> float:
        """The driver's seconds for a search of `trials` trials, `concurrency` at a time."""
        n, others = max(0, trials), max(1, concurrency) - 1
        per_trial = self.driver_s + others * self.concurrency_s
        return self.search_s + n * per_trial + n * n * self.growth_s


#: The concurrency of a recorded run that does not name one (the benchmark's first default).
DEFAULT_CONCURRENCY = 16


def fit(runs: Iterable[dict[str, Any]]) -> Overhead:
    """Least squares of each run's driver CPU seconds on (1, trials, trials x (concurrency -
    1), trials^2), none below zero (runs on local storage: object storage adds its own
    uploads); the concurrency term only where the runs have two concurrencies or more."""
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
    others = [float(r.get("concurrency", DEFAULT_CONCURRENCY)) - 1 for r in rows]
    columns = [[1.0, float(r["size"]), float(r["size"]) ** 2] for r in rows]
    if len(set(others)) > 1:
        columns = [[*c, c[1] * o] for c, o in zip(columns, others, strict=True)]
    target = np.array([r["driver_cpu_per_trial_s"] * r["size"] for r in rows])
    (search_s, driver_s, growth_s, *concurrency_s), _ = nnls(np.array(columns), target)
    return Overhead(
        search_s=round(float(search_s), 2),
        driver_s=round(float(driver_s), 4),
        growth_s=float(f"{growth_s:.3g}"),
        concurrency_s=float(f"{concurrency_s[0]:.3g}") if concurrency_s else 0.0,
    )


#: `fit` of `benchmarks/results/bench_scale.jsonl`: refit when the benchmark is run again.
FITTED = Overhead(search_s=1.82, driver_s=0.0361, growth_s=1.69e-05, concurrency_s=0.000833)
