"""What `robprune status EXPERIMENT` and `robprune list [DIR]` say about an experiment.

One summary from the records the experiment keeps, wherever it is (a local path or a URI):
experiment.json (its runs and their state), status.json (live counts, best validation value,
last error, written as the search runs), driver.json (which process runs it, so a killed
driver is told from a running one on this host) and results/trials.parquet (after the
export). Nothing is written and neither Ray nor torch is started.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from robprune.config.spec_yaml import load_yaml_text
from robprune.errors import BadInput
from robprune.io.results_schema import TRIAL_STATES
from search.run.ownership import driver_state
from search.spec.settings import parse_search
from search.state import storage
from search.state.experiment import STATE_FILE, Experiment
from search.state.status_file import LiveStatus, read_status

__all__ = ["EXPERIMENT_STATES", "experiment_overview", "list_experiments", "is_experiment"]

#: An experiment's state, as `status` and `list` say it.
EXPERIMENT_STATES = {
    "running": "a driver is running it",
    "finished": "every run ended (trials may still have failed: see ERROR)",
    "interrupted": "stopped (Ctrl-C, `robprune stop`): `robprune resume` continues it",
    "killed": "its driver is gone without ending it: `robprune resume` continues it",
    "starting": "created; no run has begun yet",
}
#: The column naming the attack behind an accuracy column (docs/results.md).
_ATTACK_OF = {"val_robust_acc": "val_robust_attack", "robust_acc": "robust_attack"}
#: A run elsewhere whose status.json is older than this is said to be silent.
_SILENT_S = 600.0


def _trials_table(exp: Experiment) -> list[dict[str, Any]] | None:
    try:
        table = pq.read_table(f"{exp.fs_path}/results/trials.parquet", filesystem=exp.fs)
    except (OSError, ValueError):
        return None
    keep = [c for c in ("trial_id", "status", "error") if c in table.column_names]
    keep += [c for c in table.column_names if c.endswith("_acc") or c.endswith("_attack")]
    return table.select(keep).to_pylist()


def _primary(exp: Experiment) -> tuple[str, str]:
    """(metric, mode) of the search's primary objective, from its spec (robust_acc, max)."""
    try:
        raw = load_yaml_text(exp.read_spec_yaml(), source="spec.yaml") or {}
        primary = parse_search(raw.get("search")).primary
        return primary.metric, primary.mode
    except (OSError, BadInput, AttributeError):
        return "robust_acc", "max"


def _best_from_table(rows: list[dict[str, Any]], metric: str, mode: str) -> dict | None:
    """The finished trial best on the validation value of `metric` (the test value beside)."""
    column = f"val_{metric}" if any(r.get(f"val_{metric}") is not None for r in rows) else metric
    done = [r for r in rows if r.get("status") == "TERMINATED" and r.get(column) is not None]
    if not done:
        return None
    pick = max if mode == "max" else min
    best = pick(done, key=lambda r: r[column])
    return {
        "trial_id": best["trial_id"],
        "metric": column,
        "mode": mode,
        "value": best[column],
        "split": "validation" if column.startswith("val_") else "test",
        "attack": best.get(_ATTACK_OF.get(column, "")),
        "test": {metric: best.get(metric)},
    }


def _state(exp: Experiment, status: LiveStatus | None, driver: dict | None) -> tuple[str, str]:
    runs = [s.status for s in exp.segments]
    if not runs:
        return "starting", ""
    if all(r == "finished" for r in runs):
        return "finished", ""
    if "running" not in runs:
        return "interrupted", ""
    if driver and driver.get("alive") is False:
        return "killed", f"driver PID {driver.get('pid')} on {driver.get('host')} is gone"
    where = f"PID {driver.get('pid')} on {driver.get('host')}" if driver else "a driver"
    if (not driver or driver.get("alive") is None) and status:  # another host, or no record
        age = time.time() - float(status.updated or 0)
        if age > _SILENT_S:
            return "running", f"{where}; silent for {age / 60:.0f} min (lost? resume it)"
    return "running", where


def _counts(state: str, status: LiveStatus | None, rows: list | None) -> dict[str, int]:
    if rows is not None and state in ("finished", "interrupted"):
        return {s: sum(r.get("status") == s for r in rows) for s in TRIAL_STATES}
    said = status.trials if status is not None else {}
    counts = {s: int(said.get(s, 0)) for s in TRIAL_STATES}
    if state == "killed":  # nothing runs any more: those trials wait for the resume
        counts["PENDING"] += counts.pop("RUNNING")
        counts["RUNNING"] = 0
    return counts


def _planned(exp: Experiment, status: LiveStatus | None, rows: list | None) -> int | None:
    sizes = [s.num_samples for s in exp.segments]
    if sizes and all(n is not None for n in sizes):
        return int(sum(sizes))  # optimize and random: every run's trials
    if status and status.total:
        return status.total  # a grid: its cells x seeds
    return len(rows) if rows is not None else None


def _last_error(status: LiveStatus | None, rows: list | None) -> dict | None:
    if status and status.last_error:
        return status.last_error
    failed = [r for r in rows or [] if r.get("status") == "ERROR" and r.get("error")]
    return {"trial_id": failed[-1]["trial_id"], "error": failed[-1]["error"]} if failed else None


def _exists(exp: Experiment, rel: str) -> bool:
    try:
        return storage.exists(exp.fs, f"{exp.fs_path}/{rel}")
    except OSError:
        return False


def experiment_overview(location: str) -> dict[str, Any]:
    """Everything `robprune status` shows, as JSON-able data (`--json` prints it as it is)."""
    exp = Experiment.open(location)
    status = read_status(exp.location)
    driver = driver_state(exp)
    rows = _trials_table(exp)
    state, why = _state(exp, status, driver)
    metric, mode = _primary(exp)
    best = _best_from_table(rows, metric, mode) if rows else None
    if best is None and status and status.best_validation:  # live, from status.json
        live = status.best_validation
        named = f"val_{live['metric']}" if f"val_{live['metric']}" in _ATTACK_OF else None
        best = {**live, "metric": named or live["metric"], "split": "validation"}
    journal = exp.path("optuna", "journal.log")
    return {
        "name": exp.name,
        "location": exp.location,
        "mode": exp.mode,
        "state": state,
        "state_detail": why,
        "runs": [{"name": s.name, "status": s.status} for s in exp.segments],
        "trials": _counts(state, status, rows),
        "planned": _planned(exp, status, rows),
        "best": best,
        "last_error": _last_error(status, rows),
        "updated": status.updated if status else None,
        "results": exp.path("results") if rows is not None else None,
        "report": exp.path("report", "index.html") if _exists(exp, "report/index.html") else None,
        "optuna": {"journal": journal, "study": exp.study_name}
        if _exists(exp, "optuna/journal.log")
        else None,
    }


def list_experiments(root: str) -> list[dict[str, Any]]:
    """The overview of every experiment directly under `root` (a folder or a URI)."""
    location = storage.resolve_location(root)
    fs, path = storage.filesystem(location)
    try:
        if not storage.exists(fs, path):
            raise BadInput(f"{root}: no such folder")
        entries = storage.listing(fs, path)
    except (FileNotFoundError, OSError) as exc:
        raise BadInput(f"{root}: cannot list experiments here ({exc})") from None
    found = []
    for entry in sorted(entries, key=lambda e: e.base_name):
        if entry.base_name.startswith(".") or not storage.exists(fs, f"{entry.path}/{STATE_FILE}"):
            continue
        try:
            found.append(experiment_overview(storage.join(location, entry.base_name)))
        except BadInput as exc:  # one unreadable experiment must not hide the others
            found.append({"name": entry.base_name, "state": "unreadable", "error": str(exc)})
    return found


def is_experiment(target: str) -> bool:
    """Whether `target` names an experiment location (a folder or URI), not a job id."""
    return "://" in target or Path(target).exists() or "/" in target
