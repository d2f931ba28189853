"""What one calibration measures (`StepKey`) and what it found (`Measured`): the records
`search.plan.calibrate` caches and `search.plan.measure` fills, importing no torch."""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass

__all__ = ["CALIBRATION_VERSION", "PRUNED_SPARSITY", "StepKey", "Measured"]

#: Bump when what is measured changes: older cache entries are then ignored.
CALIBRATION_VERSION = 2
#: The pruned point of the two measured (sparsity 0 and this).
PRUNED_SPARSITY = 0.75


@dataclass(frozen=True, kw_only=True)
class StepKey:
    """What one measurement depends on. `method` "attack" times one attack step instead of a
    training step (then `steps` is 1 and `batch` is the evaluation batch size)."""

    arch: str
    width: float | None
    shape: tuple[int, int, int]
    classes: int
    method: str
    steps: int
    batch: int
    norm: str
    device: str
    threads: int

    def digest(self) -> str:
        host = platform.node() or "host"
        text = json.dumps({"v": CALIBRATION_VERSION, "host": host, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True, kw_only=True)
class Measured:
    """Seconds per batch step at sparsity 0 and at PRUNED_SPARSITY, and where measured."""

    dense_s: float
    pruned_s: float
    device: str
    batches: int
    prune_s: float = 0.0
    """Seconds of one structured pruning of the network (Torch-Pruning's dependency graph and
    the pruning itself): each trial prunes once, and `prune_damage` once per group."""

    def at(self, sparsity: float) -> float:
        """Seconds per step at `sparsity`, linear between the measured points (never below
        a tenth of the dense time)."""
        slope = (self.pruned_s - self.dense_s) / PRUNED_SPARSITY
        return max(self.dense_s + slope * sparsity, 0.1 * self.dense_s)
