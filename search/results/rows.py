"""The export's trial row: one trial as search's later stages read it.

`TrialRow` is what the export hands along (the run's summary, the finalists stage, the
TensorBoard logs): the fields search reads by name are typed, the rest are kept under their
trials.parquet column names (docs/results.md). Only `to_row` turns it into the plain
column -> value dict that pyarrow's table is built from: the storage boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

__all__ = ["Columns", "TrialRow", "TrialSource"]


class Columns(Protocol):
    """A trial's columns read by name (a `TrialRow`, or a plain dict in tests and tables)."""

    def get(self, column: str, /) -> Any: ...


@dataclass(frozen=True)
class TrialSource:
    """Where a trial's saved model is: the finalists re-evaluate it without re-reading Tune."""

    checkpoint: Any  # Tune's `Checkpoint` of the trial's last report (holds final/model.pt)
    config: dict[str, Any]  # Tune's trial config `{"trial": ...}`'s trial part, as Tune has it


@dataclass(frozen=True)
class TrialRow:
    """One trial of the export: typed where search reads it, its other columns by name."""

    experiment: str
    trial_id: str
    status: str
    error: str | None
    repeat_of: str | None
    #: the seed and the design's factors (null where a factor does not apply)
    factors: Mapping[str, Any]
    #: what the trial measured and how: metric columns, attack settings, epochs_completed
    metrics: Mapping[str, Any]
    #: config_json, robprune_version, restores, restored_from_epoch, val_robust_attack
    provenance: Mapping[str, Any]
    #: the finalist columns once the finalists' results are merged (`finalist` at least)
    finalist: Mapping[str, Any] = field(default_factory=dict)
    #: the trial's saved model, for the finalists stage; not a column
    source: TrialSource | None = field(default=None, compare=False, repr=False)

    def get(self, column: str) -> Any:
        """The value of a trials.parquet column (None when the row has none)."""
        for part in (self.finalist, self.metrics, self.provenance, self.factors):
            if column in part:
                return part[column]
        if column in _NAMED:
            return getattr(self, column)
        return None

    def with_finalist(self, columns: Mapping[str, Any]) -> TrialRow:
        """This row with `columns` as its finalist columns (replacing any merged before)."""
        return replace(self, finalist=dict(columns))

    def to_row(self) -> dict[str, Any]:
        """The plain row pyarrow's table is built from (`table_from_rows`)."""
        named = {name: getattr(self, name) for name in _NAMED}
        return {**named, **self.factors, **self.provenance, **self.metrics, **self.finalist}


_NAMED = ("experiment", "trial_id", "status", "error", "repeat_of")
