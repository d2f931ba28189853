"""A trial's files in its checkpoints (docs/results.md): their names and what they hold.

The trainable writes them; the export and the reconciliation before a resume read them. The
finished `TrialResult` is `final/result.json` of the last checkpoint; every checkpoint holds
`progress.json` (its epoch, the restarts so far, every epoch's metrics).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from robprune.io.results_schema import STRUCTURE_METRICS, TEST_METRICS
from search.state import storage

__all__ = [
    "FINAL_DIR",
    "RESULT_FILE",
    "PROGRESS_FILE",
    "TRIAL_ERROR_FILE",
    "END_MARKER",
    "read_marker",
    "is_number",
    "final_report",
    "read_progress",
    "write_progress",
]

FINAL_DIR = "final"
RESULT_FILE = "result.json"
#: In every checkpoint: its epoch and the epochs the trial was restored from so far, so that
#: the history of restarts travels with the trial (a lost node, a killed driver).
PROGRESS_FILE = "progress.json"
#: In the trial's directory on storage: why the trial's own code failed. Tune retries a trial
#: after a lost node (search.max_failures); a retry of a trial that failed by itself fails again
#: at once with the first reason instead of redoing the work.
TRIAL_ERROR_FILE = "robprune-trial-error.txt"
#: In the trial's directory on storage: that the trial ended (TERMINATED or ERROR) and its last
#: metrics, written by the driver (`search.run.end_marker`).
END_MARKER = "robprune-end.json"


def read_marker(fs: Any, trial_dir: str) -> dict[str, Any] | None:
    """The trial's end marker, or None when it is missing or torn (a kill mid-write)."""
    text = storage.read_text_or_none(fs, f"{trial_dir}/{END_MARKER}")
    try:
        marker = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    return marker if isinstance(marker, dict) and "status" in marker else None


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def final_report(result: dict[str, Any], last_epoch: dict[str, Any] | None) -> dict[str, Any]:
    """Metrics of the last report: the epoch's validation metrics, structure and test metrics.

    `robust_acc`/`clean_acc` stay the validation values (what the search optimises); the test
    split's numbers go under `test/` and are never an objective.
    """
    metrics = result["metrics"]
    report: dict[str, Any] = {}
    if last_epoch is not None:
        report.update(last_epoch)
    else:  # no fine-tuning epochs: the validation metrics of the pruned model
        report.update(
            {
                "epoch": 0,
                "clean_acc": metrics.get("val_clean_acc"),
                "robust_acc": metrics.get("val_robust_acc"),
                "train_loss": math.nan,
            }
        )
    for key in STRUCTURE_METRICS:  # known once pruned: secondary objectives may use them
        if is_number(metrics.get(key)):
            report[key] = metrics[key]
    report["test"] = {k: metrics[k] for k in TEST_METRICS if is_number(metrics.get(k))}
    report["epochs_completed"] = metrics.get("epochs_completed", 0)
    return report


def read_progress(directory: str | Path) -> dict[str, Any]:
    """`{"epoch": E, "restored_from": [...], "epochs": [...]}` of a checkpoint (empty if absent).

    `epochs` holds every epoch's metrics up to E: the per-epoch rows survive a kill that
    loses the tail of Tune's own result.json.
    """
    try:
        data = json.loads(Path(directory, PROGRESS_FILE).read_text())
        return {
            "epoch": int(data["epoch"]),
            "restored_from": list(data["restored_from"]),
            "epochs": list(data.get("epochs", [])),
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {"epoch": 0, "restored_from": [], "epochs": []}


def write_progress(
    directory: str | Path, epoch: int, restored_from: list[int], epochs: list[dict[str, Any]]
) -> None:
    payload = {"epoch": epoch, "restored_from": restored_from, "epochs": epochs}
    Path(directory, PROGRESS_FILE).write_text(json.dumps(payload) + "\n")
