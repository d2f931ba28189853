"""What a trial's directory says about it (checkpoints, `final/` result, end marker, Tune's
result.json), read for reconciliation (`search.run.reconcile`): as little as a decision needs,
and several directories at a time, because on object storage each file is a round trip."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any

import pyarrow.fs as pafs

from search.state import storage
from search.state.checkpoints import CHECKPOINT_DIR, checkpoint_index
from search.state.trial_files import END_MARKER, FINAL_DIR, RESULT_FILE, read_marker

__all__ = ["READERS", "TrialRecord", "read_record", "read_records"]


def _on_disk(fs: pafs.FileSystem) -> bool:
    """A local disk: no round trips to save, and files written in place may be torn."""
    return isinstance(fs, pafs.LocalFileSystem)


class TrialRecord:
    """What a trial's directory says about it, read as far as a decision needs: its listing
    (checkpoint names; whether an end marker is there) at once, and the end marker, the final
    result and Tune's result.json each on first use. On object storage each is a round trip,
    and a trial the snapshot already finished needs its listing only (`has_marker`)."""

    def __init__(self, fs: pafs.FileSystem, trial_dir: str) -> None:
        self.fs, self.trial_dir = fs, trial_dir
        names = {i.base_name for i in storage.listing(fs, trial_dir)}
        self.checkpoints = sorted(
            (n for n in names if CHECKPOINT_DIR.match(n)), key=checkpoint_index
        )
        self._listed_marker = END_MARKER in names
        self._has_marker = self._listed_marker or not names  # no listing: look for it anyway

    @cached_property
    def marker(self) -> dict[str, Any] | None:
        """The end marker; a torn one counts as none (rebuilt by reconciliation)."""
        return read_marker(self.fs, self.trial_dir) if self._has_marker else None

    @cached_property
    def has_marker(self) -> bool:
        """Whether a whole end marker is there. On object storage a listed marker is whole
        and is not read: a PUT is atomic (an object is all there or absent). On a disk it is
        read, since a kill could tear one an older robprune wrote in place (none counts)."""
        if "marker" in self.__dict__ or not self._listed_marker or _on_disk(self.fs):
            return self.marker is not None
        return True

    @cached_property
    def final(self) -> str | None:
        """The newest checkpoint holding final/result.json."""
        return next((n for n in reversed(self.checkpoints) if self._holds_final(n)), None)

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """Tune's result.json rows that could be read (lines a kill cut: left out)."""
        return storage.read_json_lines(self.fs, f"{self.trial_dir}/result.json")

    def _holds_final(self, checkpoint: str) -> bool:
        path = f"{self.trial_dir}/{checkpoint}/{FINAL_DIR}/{RESULT_FILE}"
        return bool(storage.read_text_or_none(self.fs, path))

    def read_all(self) -> TrialRecord:
        """Everything read now (in a reader thread, for a trial whose decision needs it)."""
        _ = self.marker, self.final, self.rows
        return self


def read_record(fs: pafs.FileSystem, trial_dir: str) -> TrialRecord:
    return TrialRecord(fs, trial_dir).read_all()


#: Trial directories read at once. On object storage a directory is up to four round trips
#: (its listing, the end marker, the final result, Tune's result.json), and a killed search of
#: thousands of trials has as many directories in its snapshot: read one after another they
#: took 9-12 s of a resume at 200 trials on S3 (BENCHMARKS.md). pyarrow's file systems may be
#: used from several threads; a local disk is read in order (threads only add their cost).
READERS = 16


def read_records(
    fs: pafs.FileSystem, trial_dirs: list[str], settled: list[bool]
) -> list[TrialRecord]:
    """The records of `trial_dirs`, in order, `READERS` at a time: of a trial Tune's snapshot
    has `settled` (finished), whether it has its end marker (`TrialRecord.has_marker`: on object
    storage its listing says); of any other, everything its decision reads. Only reads: the
    decisions and every write stay one trial after another."""

    def read(directory: str, done: bool) -> TrialRecord:
        record = TrialRecord(fs, directory)
        _ = record.has_marker
        return record if done else record.read_all()

    if len(trial_dirs) < 2 or _on_disk(fs):
        return [read(d, done) for d, done in zip(trial_dirs, settled, strict=True)]
    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="reconcile") as pool:
        return list(pool.map(read, trial_dirs, settled))
