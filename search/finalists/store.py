"""Where the finalists stage keeps its results, and how they enter trials.parquet.

EXPERIMENT/finalists/selection.json names the current finalists (and how they were chosen);
EXPERIMENT/finalists/TRIAL_ID.json is one finished re-evaluation. A result file is written as
soon as its evaluation ends, so a killed driver never redoes it. The export merges them into
the trial rows (`finalist`, `autoattack_acc`, the `final_*` per-attack columns, flags); a
trial that is not in the current selection gets `finalist = False` and keeps its own numbers.
"""

from __future__ import annotations

import json
from typing import Any

from search.state import storage
from search.state.experiment import Experiment

__all__ = [
    "FINALISTS_DIR",
    "read_selection",
    "write_selection",
    "read_result",
    "write_result",
    "merge_finalists",
    "is_current",
    "FINAL_COLUMNS",
]

FINALISTS_DIR = "finalists"
SELECTION_FILE = "selection.json"
#: result metric -> trials.parquet column, for finalist rows
FINAL_COLUMNS = {
    "clean_acc": "final_clean_acc",
    "robust_acc": "final_robust_acc",
    "fgsm_acc": "final_fgsm_acc",
    "pgd_acc": "final_pgd_acc",
    "cw_acc": "final_cw_acc",
    "apgd_acc": "final_apgd_acc",
    "square_acc": "square_acc",
    "autoattack_acc": "autoattack_acc",
    "autoattack_n": "autoattack_n",
    "test_size": "final_test_size",
}


def _read_json(exp: Experiment, rel: str) -> Any | None:
    try:
        return json.loads(storage.read_file(exp, rel))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def read_selection(exp: Experiment) -> dict[str, Any] | None:
    return _read_json(exp, f"{FINALISTS_DIR}/{SELECTION_FILE}")


def write_selection(exp: Experiment, selection: dict[str, Any]) -> None:
    storage.write_file(
        exp, f"{FINALISTS_DIR}/{SELECTION_FILE}", json.dumps(selection, indent=2) + "\n"
    )


def read_result(exp: Experiment, trial_id: str) -> dict[str, Any] | None:
    return _read_json(exp, f"{FINALISTS_DIR}/{trial_id}.json")


def write_result(exp: Experiment, trial_id: str, result: dict[str, Any]) -> None:
    storage.write_file(
        exp, f"{FINALISTS_DIR}/{trial_id}.json", json.dumps(result, indent=2) + "\n"
    )


def is_current(result: dict[str, Any] | None, selection: dict[str, Any]) -> bool:
    """A stored result counts when it answered the same request (the `--attacks` override)."""
    return result is not None and result.get("request") == {"attacks": selection.get("attacks")}


def merge_finalists(exp: Experiment, rows: list[dict[str, Any]]) -> None:
    """Fill the finalist columns of `rows` (in place) from the stored selection and results."""
    selection = read_selection(exp) or {}
    chosen = {tid: rank for rank, tid in enumerate(selection.get("trial_ids", []), start=1)}
    for row in rows:
        rank = chosen.get(row["trial_id"])
        row["finalist"] = rank is not None
        result = read_result(exp, row["trial_id"]) if rank is not None else None
        if not is_current(result, selection):
            continue  # not (yet) re-evaluated with the current settings
        metrics = result["metrics"]
        row["finalist_rank"] = rank
        for key, column in FINAL_COLUMNS.items():
            if metrics.get(key) is not None:
                row[column] = metrics[key]
        row["autoattack_label"] = metrics.get("autoattack_label")
        row["final_attacks_json"] = json.dumps(metrics.get("attacks", {}), sort_keys=True)
        row["masking_flags_json"] = json.dumps(metrics.get("masking_flags", []))
        row["autoattack_scope"] = metrics.get("autoattack_scope")
        row["autoattack_clean_acc"] = metrics.get("autoattack_clean_acc")
        gap = metrics.get("attack_gap") or {}
        row["attack_gap"] = gap.get("gap")
        row["attack_gap_reference"] = gap.get("reference")
        for key in ("eps_sweep", "dense_eps_sweep"):
            if metrics.get(key) is not None:
                row[f"{key}_json"] = json.dumps(metrics[key])
