"""Where the finalists stage keeps its results, and how they enter trials.parquet.

EXPERIMENT/finalists/selection.json names the current finalists (and how they were chosen);
EXPERIMENT/finalists/TRIAL_ID.json is one finished re-evaluation. A result file is written as
soon as its evaluation ends, so a killed driver never redoes it. The export merges them into
the trial rows (`finalist`, `autoattack_acc`, the `final_*` per-attack columns, flags); a
trial that is not in the current selection gets `finalist = False` and keeps its own numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from search.finalists.selection import FinalistResult, FinalistSelection
from search.results.rows import TrialRow
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


def read_selection(exp: Experiment) -> FinalistSelection | None:
    return FinalistSelection.from_json(_read_json(exp, f"{FINALISTS_DIR}/{SELECTION_FILE}"))


def write_selection(exp: Experiment, selection: FinalistSelection) -> None:
    text = json.dumps(selection.to_json(), indent=2) + "\n"
    storage.write_file(exp, f"{FINALISTS_DIR}/{SELECTION_FILE}", text)


def read_result(exp: Experiment, trial_id: str) -> FinalistResult | None:
    return FinalistResult.from_json(_read_json(exp, f"{FINALISTS_DIR}/{trial_id}.json"))


def write_result(exp: Experiment, trial_id: str, result: FinalistResult) -> None:
    text = json.dumps(result.to_json(), indent=2) + "\n"
    storage.write_file(exp, f"{FINALISTS_DIR}/{trial_id}.json", text)


def is_current(result: FinalistResult | None, selection: FinalistSelection | None) -> bool:
    """A stored result counts when it answered the same request (the `--attacks` override)."""
    return result is not None and selection is not None and result.request == selection.request


def merge_finalists(exp: Experiment, rows: list[TrialRow]) -> list[TrialRow]:
    """`rows` with their finalist columns from the stored selection and results (a row merged
    before gets the current ones instead)."""
    selection = read_selection(exp)
    chosen = selection.ranks() if selection is not None else {}
    merged = []
    for row in rows:
        rank = chosen.get(row.trial_id)
        result = read_result(exp, row.trial_id) if rank is not None else None
        if rank is None or result is None or not is_current(result, selection):
            merged.append(row.with_finalist({"finalist": rank is not None}))
        else:  # re-evaluated with the current settings
            merged.append(row.with_finalist(_finalist_columns(result.metrics, rank)))
    return merged


def _finalist_columns(metrics: Mapping[str, Any], rank: int) -> dict[str, Any]:
    """A finalist's trials.parquet columns; they replace the trial's own where both have one."""
    columns: dict[str, Any] = {"finalist": True, "finalist_rank": rank}
    for key, column in FINAL_COLUMNS.items():
        if metrics.get(key) is not None:
            columns[column] = metrics[key]
    columns["autoattack_label"] = metrics.get("autoattack_label")
    columns["final_attacks_json"] = json.dumps(metrics.get("attacks", {}), sort_keys=True)
    columns["masking_flags_json"] = json.dumps(metrics.get("masking_flags", []))
    columns["autoattack_scope"] = metrics.get("autoattack_scope")
    columns["autoattack_clean_acc"] = metrics.get("autoattack_clean_acc")
    gap = metrics.get("attack_gap") or {}
    columns["attack_gap"] = gap.get("gap")
    columns["attack_gap_reference"] = gap.get("reference")
    for key in ("eps_sweep", "dense_eps_sweep"):
        if metrics.get(key) is not None:
            columns[f"{key}_json"] = json.dumps(metrics[key])
    return columns
