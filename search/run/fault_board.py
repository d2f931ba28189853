"""The board trials post storage faults to: a Ray actor on the driver's node, which
`FaultWatch` reads (`search/run/fault_watch.py`). What a storage fault is, and the driver's own
record of them, are `search.run.storage_fault`'s; this module imports Ray at its top, so the
runner imports it only once Ray's environment is set.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from search.run.storage_fault import _TRIAL_WAIT_S, _driver_faults, fault_cause

__all__ = ["BOARD_NAME", "find_board", "report_from_trial", "open_board"]

BOARD_NAME = "robprune-storage-faults"
_board_handle: tuple[str, Any] | None = None  # (Ray job and node, the board this driver made)


def find_board() -> Any | None:
    """The driver's board, or None outside a robprune search."""
    try:
        return ray.get_actor(BOARD_NAME)
    except (ValueError, RuntimeError):  # no board: not a robprune search (unit use)
        return None


def report_from_trial(exc: BaseException, trial_id: str) -> None:
    """Inside a trial: post a storage fault to the driver and wait (bounded) to be stopped.

    Returns at once when `exc` is no storage fault or no driver listens; the caller then
    raises as usual (also after the bounded wait, should no stop come)."""
    found = fault_cause(exc)
    board = find_board() if found else None
    if found is None or board is None:
        return
    ray.get(board.post.remote(*found, trial_id))
    print(f"storage fault: {found[0]} {found[1]}; waiting to be stopped", flush=True)
    time.sleep(_TRIAL_WAIT_S)  # the driver stops this trial long before


def open_board() -> None:
    """Before `Tuner.fit`: the board trials post to (one per Ray job), no fault seen yet."""
    global _board_handle
    _driver_faults.clear()
    context = ray.get_runtime_context()
    job = f"{context.get_job_id()}@{context.get_node_id()}"  # a new local Ray: a new node
    if _board_handle is None or _board_handle[0] != job:  # none yet, or an earlier Ray's
        _board_handle = (job, _new_board())
    ray.get(_board_handle[1].clear.remote())  # started (and empty) before any trial posts


def _new_board() -> Any:
    """A board on the driver's own node: a worker node that is lost must not take it along.
    A named actor lives as long as its creator holds the handle: this driver keeps it."""
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    options = {"name": BOARD_NAME, "num_cpus": 0, "scheduling_strategy": here}
    return _FaultBoard.options(**options).remote()


@ray.remote
class _FaultBoard:
    """The storage faults trials posted: (path, cause, remedy, trial id)."""

    def __init__(self) -> None:
        self.faults: list[tuple[str, str, str, str]] = []

    def post(self, path: str, cause: str, remedy: str, trial_id: str) -> None:
        self.faults.append((path, cause, remedy, trial_id))

    def read(self) -> list[tuple[str, str, str, str]]:
        return list(self.faults)

    def clear(self) -> None:
        self.faults = []
