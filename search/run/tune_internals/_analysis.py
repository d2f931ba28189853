"""Tune's snapshot read for its trials only, without the results Tune reads with them.

Tune's `ExperimentAnalysis`, when built, reads every trial's `result.json` (an existence check
and a read, one trial after another) into a DataFrame. robprune builds one where it needs the
snapshot's trials only (the export: it reads each trial's files itself), and Tune builds one
inside `Tuner.restore` for `Tuner.get_results()` before `fit()`, which robprune never calls
(`fit()` makes its own). At 2,000 trials on object storage those reads were 4,000 round trips:
51 s of a resume, and much of an export, on moto (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ray.tune import ExperimentAnalysis
from ray.tune.impl import tuner_internal

from search.run.tune_internals._members import require

__all__ = ["SnapshotTrials", "restore_reads_no_results"]


class SnapshotTrials(ExperimentAnalysis):
    """An `ExperimentAnalysis` whose `trials` are read from the snapshot and whose per-trial
    results are not read (`trial_dataframes` is empty)."""

    def _fetch_trial_dataframes(self) -> dict[str, Any]:
        return {}


@contextmanager
def restore_reads_no_results() -> Iterator[None]:
    """While inside, `Tuner.restore` builds a `SnapshotTrials` where it builds its analysis."""
    require(ExperimentAnalysis, "ray.tune ExperimentAnalysis", ("_fetch_trial_dataframes",))
    require(tuner_internal, "ray.tune.impl.tuner_internal", ("ExperimentAnalysis",))
    built = tuner_internal.ExperimentAnalysis
    tuner_internal.ExperimentAnalysis = SnapshotTrials
    try:
        yield
    finally:
        tuner_internal.ExperimentAnalysis = built
