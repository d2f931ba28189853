"""Ctrl-C during a search: the first SIGINT stops cleanly, a second exits at once.

First: inside `Tuner.fit` Tune is asked to stop (its own SIGUSR1 handler: running trials stop,
their per-epoch checkpoints and the experiment state are saved); elsewhere (dense stage,
export) a KeyboardInterrupt unwinds, and Ray is shut down. The search then ends with exit 130
and says how to resume. Second: the Ray processes this driver started are ended by PID and the
process exits with 130 at once; a resume reconciles whatever was left.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from search.run.ownership import own_descendants

__all__ = ["InterruptState", "handle_sigint", "EXIT_INTERRUPTED"]

EXIT_INTERRUPTED = 130


@dataclass
class InterruptState:
    """How many SIGINTs arrived, and what to tell the user."""

    count: int = 0
    resume_hint: str = ""
    tuning: bool = False  # inside Tuner.fit: Tune stops the trials itself

    @property
    def interrupted(self) -> bool:
        return self.count > 0


def _tune_listens() -> bool:
    """Whether Tune's stop handler is installed (it is, on SIGUSR1, while `fit` runs)."""
    handler = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
    return callable(handler)


def _exit_now(state: InterruptState) -> None:
    sys.stderr.write(f"\ninterrupted again: exiting now. {state.resume_hint}\n")
    sys.stderr.flush()
    for pid in own_descendants():
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    os._exit(EXIT_INTERRUPTED)


@contextmanager
def handle_sigint(resume_hint: str) -> Iterator[InterruptState]:
    """Own SIGINT for the body (main thread only; elsewhere the body runs as it is)."""
    state = InterruptState(resume_hint=resume_hint)
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # one handler decides: this one

    def on_sigint(signum: int, frame: Any) -> None:
        state.count += 1
        if state.count > 1:
            _exit_now(state)
        sys.stderr.write(
            "\ninterrupted: stopping cleanly, saving state (Ctrl-C again exits at once). "
            f"{state.resume_hint}\n"
        )
        sys.stderr.flush()
        if state.tuning and _tune_listens():
            os.kill(os.getpid(), signal.SIGUSR1)  # Tune stops its trials and saves its state
            return
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)
        if previous_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_env
