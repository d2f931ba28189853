"""The experiment's storage is its only durable copy: what a resume needs reaches it as trials go.

On object storage the driver keeps the Optuna journal in a local working copy (Optuna needs a
file to append to and lock), which dies with the head. `JournalPush` uploads what that copy
appended (`search.state.journal_parts`: linear bytes over a search, not quadratic) whenever it
changed: at once when a trial ends (Tune's searcher has just told Optuna), else at
most `period_s` after a change (an ask when a trial starts, an intermediate value when one
reports). Tune's experiment snapshot is synced by Tune itself every `SYNC_PERIOD_S`
(`sync_config`); the trials' end markers, status.json and experiment.json are written to the
storage directly. A lost head therefore loses at most the running trials' current epochs and
the last `period_s` of asks, never a finished trial's tell.

`pull_journal` is the other direction, before a resume: storage is the record; a local copy is
kept only where it extends the stored journal (the same machine, a push cut short by a kill).
"""

from __future__ import annotations

import time
from typing import Any

from ray import tune

from search.state.experiment import JOURNAL_FILE, Experiment
from search.state.journal_parts import JournalUploads, read_journal, write_whole
from search.state.storage import is_remote

__all__ = ["JournalPush", "SYNC_PERIOD_S", "pull_journal", "sync_config"]

#: Seconds between two uploads of Tune's experiment snapshot (Ray's default is 300).
SYNC_PERIOD_S = 2.0


def sync_config() -> Any:
    """Tune's snapshot reaches the storage within seconds, not Ray's default five minutes."""
    return tune.SyncConfig(sync_period=SYNC_PERIOD_S)


def _remote_journal(exp: Experiment) -> str:
    return f"{exp.fs_path}/optuna/{JOURNAL_FILE}"


def pull_journal(exp: Experiment) -> None:
    """Make the local working copy of the journal the stored one (remote experiments)."""
    if not exp.remote:
        return
    stored = read_journal(exp.fs, _remote_journal(exp))
    if stored is None:
        return
    local = exp.journal_path
    mine = local.read_bytes() if local.is_file() else b""
    if len(mine) > len(stored) and mine.startswith(stored):
        push_journal(exp)  # this machine's copy is ahead: storage catches up
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(local.name + ".pulled")
    tmp.write_bytes(stored)
    tmp.replace(local)


def push_journal(exp: Experiment) -> None:
    """Upload the whole local journal (object stores do not append) and drop its parts."""
    if not exp.remote or not exp.journal_path.is_file():
        return
    write_whole(exp.fs, _remote_journal(exp), exp.journal_path.read_bytes())


class JournalPush(tune.Callback):
    """Uploads the Optuna journal's working copy as the search writes it (see the module)."""

    def __init__(self, location: str, *, period_s: float = 2.0):
        self.location = location
        self.period_s = period_s
        self._exp: Experiment | None = None
        self._uploads = JournalUploads()
        self._changed_at: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_exp": None, "_uploads": JournalUploads(), "_changed_at": None}

    def _experiment(self) -> Experiment:
        if self._exp is None:  # its state names the working copy (opened once, lazily)
            self._exp = Experiment.open(self.location)
        return self._exp

    def _push(self, *, force: bool) -> None:
        if not is_remote(self.location):
            return  # a local experiment's journal is the record itself
        exp = self._experiment()
        try:
            size = exp.journal_path.stat().st_size
        except OSError:
            return
        if size == self._uploads.stored:
            self._changed_at = None
            return
        now = time.monotonic()
        if self._changed_at is None:
            self._changed_at = now
        if not force and now - self._changed_at < self.period_s:
            return
        try:  # only what was appended since the last push (search.state.journal_parts)
            self._uploads.push(exp.fs, _remote_journal(exp), exp.journal_path.read_bytes())
        except OSError as exc:  # retried at the next step; the search itself goes on
            print(f"warning: could not upload the Optuna journal: {exc}", flush=True)
            return
        self._changed_at = None

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._push(force=False)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._push(force=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._push(force=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._push(force=True)
