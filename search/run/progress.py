"""What the user sees while a search runs, and the table at its end.

Tune's own status table is wide and repeats itself; this prints one line per event (a trial
started, finished, failed) with the running/completed/failed counts, a heartbeat while
nothing happens, and at the end the best trials and where the results are.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, TextIO

from ray import tune

from robprune.config.factors import FACTORS, FactorSpec
from robprune.formatting import cell
from robprune.io.results_schema import format_states
from search.results.export import error_message
from search.results.rows import Columns

__all__ = ["ProgressCallback", "summary_table", "format_counts"]

#: (config key path, its factor) shown for each trial: every factor's paths, then the seed.
_SHOWN_PARAMS: tuple[tuple[str, FactorSpec | None], ...] = (
    *((path, f) for f in FACTORS for path in f.paths),
    ("seed", None),
)


def format_counts(
    trials: Sequence[Any], total: int | None = None, event: Any = None, status: str | None = None
) -> str:
    """Counts by status; `event`'s trial counts as `status` (callbacks run before Tune's
    own bookkeeping moves it)."""
    counts = Counter(status if event is not None and t is event else t.status for t in trials)
    counts["PENDING"] += counts.pop("PAUSED", 0)
    return format_states(counts, total)


def _trial_params(trial: Any) -> str:
    config = trial.config.get("trial", {})

    def value_of(path: str) -> Any:
        node: Any = config
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    out = []
    for path, spec in _SHOWN_PARAMS:
        if spec is not None and not spec.applies_to(path, value_of):
            continue
        node = value_of(path)
        if node is not None:
            out.append(f"{path.split('.')[-1]}={cell(node, missing='-')}")
    return " ".join(out)


class ProgressCallback(tune.Callback):
    """Prints trial events with counts; `metrics` are shown for each finished trial."""

    def __init__(
        self,
        metrics: Sequence[str],
        total: int | None = None,
        heartbeat_s: float = 30.0,
        stream: TextIO | None = None,
    ):
        self.metrics = list(metrics)
        self.total = total
        self.heartbeat_s = heartbeat_s
        self.stream = stream
        self._last = time.monotonic()
        self._announced_done: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["stream"] = None  # pickled into the Tune experiment: a stream cannot travel
        return state

    def _print(self, message: str) -> None:
        stream = self.stream or sys.stdout
        stamp = time.strftime("%H:%M:%S")
        print(f"[{stamp}] {message}", file=stream, flush=True)
        self._last = time.monotonic()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        retry = getattr(getattr(trial, "run_metadata", None), "num_failures", 0) or 0
        verb = "restarted" if retry else "started  "
        why = f" [retry {retry}: after a failure, from its last checkpoint]" if retry else ""
        ref = (trial.config or {}).get("repeat_of")
        why += f" [repeat of {ref['trial_id']}: answered when it ends]" if ref else ""
        self._print(
            f"{verb} {trial.trial_id}  {_trial_params(trial)}{why}   "
            f"({format_counts(trials, self.total, trial, 'RUNNING')})"
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if trial.trial_id in self._announced_done:
            return
        self._announced_done.add(trial.trial_id)
        last = trial.last_result or {}
        shown = " ".join(f"{m}={cell(last[m], missing='-')}" for m in self.metrics if m in last)
        epochs = last.get("epochs_completed", last.get("epoch"))
        self._print(
            f"completed {trial.trial_id}  {shown} (validation) epochs={epochs}   "
            f"({format_counts(trials, self.total, trial, 'TERMINATED')})"
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(
            f"FAILED    {trial.trial_id}  {_trial_params(trial)}: "
            f"{error_line(trial)}   "
            f"({format_counts(trials, self.total, trial, 'ERROR')})"
        )

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        if time.monotonic() - self._last >= self.heartbeat_s:
            running = [_running(t, self.metrics) for t in trials if t.status == "RUNNING"]
            running = [r for r in running if r]
            detail = f"; {', '.join(running)}" if running else ""
            self._print(f"{format_counts(trials, self.total)}{detail}")


def _running(trial: Any, metrics: Sequence[str]) -> str:
    """One running trial for the heartbeat; a repeat not yet answered names what it awaits."""
    r = trial.last_result or {}
    if "epoch" not in r:
        ref = (trial.config or {}).get("repeat_of")
        if ref:
            return f"{trial.trial_id} waiting for {ref['trial_id']} to end (it repeats it)"
        if not r:
            return ""
    shown = " ".join(f"{m}={cell(r[m], missing='-')}" for m in metrics[:1] if m in r)
    return f"{trial.trial_id}@epoch {r.get('epoch', '?')} {shown}".strip()


def error_line(trial: Any) -> str:
    """The trial's exception in one line, without the traceback."""
    try:
        return error_message(trial) or "see error.txt in the trial directory"
    except Exception:  # noqa: BLE001 - a progress line must never fail the search
        return "see error.txt in the trial directory"


def summary_table(
    rows: Sequence[Columns],
    objectives: Sequence[tuple[str, str]],
    varying: Sequence[str],
    top: int = 5,
) -> str:
    """The best finished trials, as a text table.

    Ranked by the validation value of the primary objective where there is one (selecting on
    the test split would leak it); the test-split numbers are what the table shows.
    """
    metric, mode = objectives[0]
    rank_by = f"val_{metric}" if any(r.get(f"val_{metric}") is not None for r in rows) else metric
    done = [r for r in rows if r.get(rank_by) is not None]
    done.sort(key=lambda r: r.get(rank_by), reverse=mode == "max")
    columns = ["trial_id", *varying, "clean_acc", "robust_acc", "params", "epochs_completed"]
    for extra in (metric, rank_by):
        if extra not in columns:
            columns.append(extra)
    strong = [r for r in done[:top] if r.get("strong_acc") is not None]
    if strong:
        columns.insert(columns.index("robust_acc") + 1, "strong_acc")
    body = [[cell(r.get(c), missing="-") for c in columns] for r in done[:top]]
    if not body:
        return "no trial finished with test metrics"
    widths = [max(len(c), *(len(row[i]) for row in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in body]
    for label in sorted({str(r.get("strong_label") or r.get("strong_suite")) for r in strong}):
        lines.append(f"strong_acc: {label}")
    return "\n".join(lines)
