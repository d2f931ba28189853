"""The finalists stage's records: who was chosen (and how), and what one re-evaluation gave.

Both are stored as JSON in EXPERIMENT/finalists/ (search/finalists/store.py); `to_json` and
`from_json` are the storage boundary, the stage itself passes the records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from search.results.rows import TrialSource

__all__ = ["FinalistResult", "FinalistSelection"]


@dataclass(frozen=True)
class FinalistSelection:
    """Which trials are finalists, by which rule: a stored result counts only if it answers it."""

    top: int
    #: the rule: the validation objectives, `metric:mode`, as the spec says them
    objectives: tuple[str, ...]
    #: the finalists, best first
    trial_ids: tuple[str, ...]
    #: the `--attacks` override of the suite (None: the spec's own)
    attacks: tuple[str, ...] | None = None
    #: each finalist's saved model, from the export in hand; not stored
    sources: Mapping[str, TrialSource] = field(default_factory=dict, compare=False, repr=False)

    @property
    def request(self) -> dict[str, Any]:
        """What a result records it answered (`FinalistResult.request`)."""
        return {"attacks": list(self.attacks) if self.attacks is not None else None}

    def ranks(self) -> dict[str, int]:
        """trial id -> its rank (1 is the best)."""
        return {trial_id: rank for rank, trial_id in enumerate(self.trial_ids, start=1)}

    def to_json(self) -> dict[str, Any]:
        return {
            "top": self.top,
            "objectives": list(self.objectives),
            "trial_ids": list(self.trial_ids),
            "attacks": list(self.attacks) if self.attacks is not None else None,
        }

    @classmethod
    def from_json(cls, data: Any) -> FinalistSelection | None:
        """The selection of a selection.json (None when it holds none)."""
        if not isinstance(data, dict):
            return None
        attacks = data.get("attacks")
        return cls(
            top=int(data.get("top") or 0),
            objectives=tuple(data.get("objectives") or ()),
            trial_ids=tuple(data.get("trial_ids") or ()),
            attacks=tuple(attacks) if attacks is not None else None,
        )


@dataclass(frozen=True)
class FinalistResult:
    """One finished re-evaluation as stored: its metrics, and the request it answered."""

    #: `evaluate_finalist`'s metrics: per-attack accuracies, AutoAttack, flags, sweeps
    metrics: Mapping[str, Any]
    #: `{"attacks": ...}`: the override it was evaluated with (compared with the selection's)
    request: Mapping[str, Any] | None
    #: the whole record `evaluate_finalist` gave (settings, attack configs, warnings)
    record: Mapping[str, Any] = field(repr=False)

    @classmethod
    def answering(cls, record: dict[str, Any], request: Mapping[str, Any]) -> FinalistResult:
        """The result of a finished evaluation (`evaluate_finalist`'s record) for `request`."""
        return cls(metrics=record.get("metrics") or {}, request=dict(request), record=record)

    def to_json(self) -> dict[str, Any]:
        return {**self.record, "request": self.request}

    @classmethod
    def from_json(cls, data: Any) -> FinalistResult | None:
        """The result of a TRIAL_ID.json (None when it holds none)."""
        if not isinstance(data, dict):
            return None
        record = {k: v for k, v in data.items() if k != "request"}
        return cls(metrics=data.get("metrics") or {}, request=data.get("request"), record=record)
