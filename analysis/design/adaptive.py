"""Adaptive designs: trials stopped early (ASHA) and samplers that follow the results (TPE).

A scheduler stops trials on their validation robust accuracy and the stopped ones never get
test metrics, so the test-split table holds only the survivors of a cut on the response:
analysed alone, it shrinks the very effect that decided the cut (if CE trials die at the first
rung, the fine-tuning effect disappears with them). The headline decomposition therefore uses a
response every completed trial has, the per-epoch validation metric at the last epoch all of
them reached (epochs.parquet); the survivors' test-split numbers are a secondary table. An
adaptive sampler (the spec's `search.mode: optimize` with a sampler other than random) samples
good regions more often: the report says so, since the design then depends on the outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.read.load import ResultSet

__all__ = ["EPOCH_RESPONSES", "Adaptive", "adaptive_design", "headline_column"]

#: Test-split responses with a per-epoch validation counterpart in epochs.parquet.
EPOCH_RESPONSES = ("robust_acc", "clean_acc")


@dataclass(frozen=True, kw_only=True)
class Adaptive:
    """What was adaptive about the design, and the headline table when trials were stopped."""

    stopped: int  # completed trials without test metrics that ran some epochs
    samplers: tuple[str, ...]  # adaptive samplers named by the specs (ResultSet.samplers)
    epoch: int | None = None  # the last epoch every completed trial reached
    response: str | None = None  # the headline column (validation metric at `epoch`)
    trials: pd.DataFrame | None = None  # completed trials with the headline response
    reason: str = ""  # why no headline response could be built, when trials were stopped
    lacking: int = 0  # completed trials without a value of the headline response (left out)

    @property
    def adaptive(self) -> bool:
        return bool(self.stopped or self.samplers)


def headline_column(response: str, epoch: int) -> str:
    """'robust_acc', 3 -> 'epoch3_val_robust_acc' (labelled by formatting.response_label)."""
    return f"epoch{epoch}_val_{response}"


def _at_epoch(ok: pd.DataFrame, epochs: pd.DataFrame, response: str) -> tuple[int, np.ndarray]:
    """The last epoch every trial with epochs reached, and each trial's value there."""
    keys = ["experiment", "trial_id"]
    column = f"val_{response}"  # epochs.parquet holds validation numbers, named so
    rows = epochs.dropna(subset=[column]).merge(ok[keys], on=keys)
    reached = rows.groupby(keys)["epoch"].max()
    epoch = int(reached.min())
    at = rows[rows["epoch"] == epoch].drop_duplicates(keys, keep="last")
    values = ok[keys].merge(at[[*keys, column]], on=keys, how="left")[column]
    return epoch, values.to_numpy(dtype=float)


def adaptive_design(results: ResultSet, response: str) -> Adaptive:
    """Stopped trials, adaptive samplers, and (when trials were stopped) the headline table."""
    ok = results.ok
    samplers = results.samplers
    missing = ~np.isfinite(ok[response].to_numpy(dtype=float))
    epochs = results.epochs
    if not missing.any() or epochs is None or epochs.empty:
        return Adaptive(stopped=0, samplers=samplers)
    keys = ["experiment", "trial_id"]
    with_epochs = ok[keys].merge(
        epochs[keys].drop_duplicates(), on=keys, how="left", indicator=True
    )
    ran = (with_epochs["_merge"] == "both").to_numpy()
    stopped = int((missing & ran).sum())
    if not stopped:
        return Adaptive(stopped=0, samplers=samplers)
    if response not in EPOCH_RESPONSES:
        reason = f"{response} has no per-epoch validation counterpart in epochs.parquet"
        return Adaptive(stopped=stopped, samplers=samplers, reason=reason)
    epoch, values = _at_epoch(ok, epochs, response)
    val = f"val_{response}"
    if val in ok:  # no epoch rows (nothing fine-tuned): the validation value never changes
        values = np.where(ran, values, ok[val].to_numpy(dtype=float))
    column = headline_column(response, epoch)
    trials = ok.assign(**{column: values})
    finite = np.isfinite(values)
    trials = trials[finite].reset_index(drop=True)
    return Adaptive(
        stopped=stopped,
        samplers=samplers,
        epoch=epoch,
        response=column,
        trials=trials,
        lacking=int((~finite).sum()),
    )
