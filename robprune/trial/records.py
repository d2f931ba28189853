"""What a trial hands back: per-epoch reports while it runs, one result when it ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robprune.io.atomic import atomic_write_json

__all__ = ["DenseReference", "EpochReport", "PreparedTrial", "TrialResult"]


@dataclass(frozen=True, kw_only=True)
class DenseReference:
    """The dense model a trial pruned, and its accuracies (the trial's reference numbers)."""

    clean_acc: float
    """Clean accuracy of the dense model on the trial's test split."""
    robust_acc: float
    """Its accuracy under the primary attack."""
    key: str
    """Its key in the dense cache (robprune.trial.dense.dense_key)."""
    checkpoint_sha256: str | None = None
    """SHA-256 of a brought checkpoint (dense.checkpoint); None when trained here."""


@dataclass(frozen=True, kw_only=True)
class PreparedTrial:
    """What `prepare` hands to fine-tuning and the final result: the pruned model's size, its
    layers, the warnings so far, and the dense reference. Saved in each epoch checkpoint as
    JSON (`to_json`/`from_json`), so a resumed trial reports the same numbers."""

    summary: dict[str, Any]
    """params, params_dense, flops, flops_dense, achieved_sparsity (metric columns)."""
    layers: list[dict[str, Any]]
    """One row per pruned layer (layers.parquet)."""
    warnings: list[str]
    """Warnings of the dense model, MRS and pruning."""
    dense: DenseReference
    """The dense model and its accuracies."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PreparedTrial:
        return cls(
            summary=dict(data["summary"]),
            layers=list(data["layers"]),
            warnings=list(data["warnings"]),
            dense=DenseReference(**data["dense"]),
        )


@dataclass(kw_only=True)
class TrialResult:
    config: dict[str, Any]
    """The fully resolved trial config."""
    metrics: dict[str, Any]
    """Test-split metrics (docs/results.md's columns) plus `val_clean_acc`/`val_robust_acc`."""
    epochs: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    attack_config: dict[str, Any] = field(default_factory=dict)
    """Every attack that produced a number here, with its full settings."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, directory: str | Path) -> Path:
        """result.json and the resolved config.yaml, side by side."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.to_dict(), directory / "result.json")
        (directory / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))
        return directory


@dataclass(kw_only=True)
class EpochReport:
    epoch: int
    """Completed fine-tuning epochs, 1-based."""
    metrics: dict[str, float]
    """epoch, lr, train_loss, clean_acc, robust_acc (validation subset, epoch attack), wall_s."""
    save_checkpoint: Callable[[str | Path], Path]
    """Write everything needed to continue after this epoch into a directory."""
