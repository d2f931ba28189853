"""The driver's side of storage faults: read the trials' board, stop Tune at the first fault.

Apart from `search/run/storage_fault.py` (what a storage fault is, the board trials post to)
because it subclasses Tune's `Callback`, and importing Tune imports Ray: the driver sets Ray's
environment (`search/run/session.py`) before Ray is first imported.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ray import tune

from search.run.fault_board import find_board
from search.run.storage_fault import _READ_TIMEOUT_S, _driver_faults, _stop_tune

__all__ = ["FaultWatch"]


class FaultWatch(tune.Callback):
    """The driver's side: reads the board (at most once a second) and stops Tune at the first
    storage fault, a trial's or the driver's own."""

    def __init__(self) -> None:
        self._board: Any = None
        self._next = 0.0
        self._stopping = False
        self._unavailable = False

    def __getstate__(self) -> dict[str, Any]:  # a handle does not travel
        return {"_board": None, "_next": 0.0, "_stopping": False, "_unavailable": False}

    def setup(self, **info: Any) -> None:
        self._board = find_board()

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._board is not None and time.monotonic() >= self._next:
            self._next = time.monotonic() + 1.0
            try:
                posted = ray.get(self._board.read.remote(), timeout=_READ_TIMEOUT_S)
            except ray.exceptions.RayError as exc:  # not answering: read again next time
                if not self._unavailable:
                    print(f"storage-fault board unavailable ({type(exc).__name__}); retrying")
                self._unavailable, posted = True, []
            for path, cause, remedy, _ in posted:
                if (path, cause, remedy) not in _driver_faults:
                    _driver_faults.append((path, cause, remedy))
        if _driver_faults and not self._stopping:
            self._stopping = True
            path, cause, _ = _driver_faults[0]
            print(f"storage fault: {path or 'the storage'} {cause}; stopping", flush=True)
            _stop_tune()
