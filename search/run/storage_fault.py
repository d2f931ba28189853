"""A fault of the storage (full, read-only, no permission, a failing object store) is not a
result: the search stops cleanly and says how to continue once the fault is gone.

Inside a trial (`search.run.fault_board.report_from_trial`): the fault is posted to the driver's
`FaultBoard` actor
and the trial waits to be stopped instead of raising, so Tune neither retries it (a retry
would count against `search.max_failures`) nor ends it as ERROR (which Optuna would record as
FAIL). In the driver, `FaultWatch` (`search/run/fault_watch.py`) reads the board every step
and stops Tune the way Ctrl-C does (its snapshot saved, the running trials kept RUNNING
there); callbacks of the driver that hit the storage post with `post_driver_fault`. The runner
then raises `StorageFault`: one line naming the path and the cause, exit code `EXIT_STORAGE`;
`robprune resume` continues from the trials' last checkpoints once the fault is gone.
"""

from __future__ import annotations

import errno
import os
import signal
import threading

__all__ = [
    "EXIT_STORAGE",
    "StorageFault",
    "fault_cause",
    "as_storage_fault",
    "post_driver_fault",
    "raise_if_faulted",
    "faulted",
]

#: Exit code of a search stopped by its storage (sysexits' EX_TEMPFAIL: try again later).
EXIT_STORAGE = 75
#: The driver's read of the board never waits longer than this (then it reads again later).
_READ_TIMEOUT_S = 30.0
#: A trial that posted a fault waits at most this long to be stopped, then raises after all
#: (a driver that cannot stop Tune: not in the main thread).
_TRIAL_WAIT_S = 300.0
_CAUSES = {  # errno -> (what the storage is, what to do)
    errno.ENOSPC: ("is full", "free space"),
    errno.EDQUOT: ("is over its quota", "free space"),
    errno.EROFS: ("is read-only", "make it writable"),
    errno.EACCES: ("refuses writes (permission denied)", "give write permission"),
    errno.EPERM: ("refuses writes (operation not permitted)", "give write permission"),
}
_OBJECT = ("failed (an object-store error)", "check the bucket and its credentials")
_OBJECT_STORE = ("AWS Error", "GCS Error", "google::cloud")  # pyarrow's object-store errors
_driver_faults: list[tuple[str, str, str]] = []  # (path, cause, remedy) seen by this driver


class StorageFault(Exception):
    """The experiment's storage failed; `line(location)` says what and how to continue."""

    def __init__(self, path: str, cause: str, remedy: str):
        super().__init__(f"{path}: {cause}" if path else cause)
        self.path, self.cause, self.remedy = path, cause, remedy

    def line(self, location: str) -> str:
        at = f" ({self.path})" if self.path else ""
        return f"the storage under {location} {self.cause}{at}: {self.remedy} and run " + (
            f"`robprune resume {location}`"
        )


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen) or len(seen) > 20:
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__, getattr(current, "cause", None)]
    return seen


def fault_cause(exc: BaseException) -> tuple[str, str, str] | None:
    """(path, cause, remedy) when `exc` (or what it wraps) is a storage fault, else None."""
    for item in _chain(exc):
        if not isinstance(item, OSError):
            continue
        if item.errno in _CAUSES:
            return (str(item.filename or ""), *_CAUSES[item.errno])
        text = str(item)
        if any(marker in text for marker in _OBJECT_STORE):
            return (text.splitlines()[0][:200], *_OBJECT)
    return None


def as_storage_fault(exc: BaseException) -> StorageFault | None:
    found = fault_cause(exc)
    return StorageFault(*found) if found else None


def post_driver_fault(exc: BaseException) -> bool:
    """In the driver (a callback's write failed): record it; True when it was a fault."""
    found = fault_cause(exc)
    if found is not None:
        _driver_faults.append(found)
    return found is not None


def faulted() -> bool:
    """Whether this driver saw a storage fault in the current `Tuner.fit`."""
    return bool(_driver_faults)


def raise_if_faulted() -> None:
    """After `Tuner.fit`: raise the first storage fault of this search, if any."""
    if _driver_faults:
        raise StorageFault(*_driver_faults[0])


def _stop_tune() -> None:
    """Stop Tune as Ctrl-C does (its SIGUSR1 handler): snapshot saved, trials kept RUNNING."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGUSR1"):
        if callable(signal.getsignal(signal.SIGUSR1)):
            os.kill(os.getpid(), signal.SIGUSR1)
