"""Reconciliation reads the snapshot's trial directories several at a time, and of a trial the
snapshot already finished only what its decision needs (`search.run.trial_record.read_records`): on
object storage each file is a round trip, and read one after another, four per trial, they
made most of a killed search's resume at thousands of trials."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pyarrow.fs as pafs

from search.run.end_marker import END_MARKER, marker_text
from search.run.trial_record import READERS, read_record, read_records
from search.state.trial_files import FINAL_DIR, RESULT_FILE


class _CountingHandler(pafs.FileSystemHandler):
    """The local file system, each call held a moment (a round trip), the most calls in
    flight at once counted."""

    def __init__(self) -> None:
        self.local, self.lock = pafs.LocalFileSystem(), threading.Lock()
        self.in_flight = self.most = self.opened = 0

    def _held(self, call):
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(0.005)
            return call()
        finally:
            with self.lock:
                self.in_flight -= 1

    def get_file_info(self, paths):
        return self._held(lambda: self.local.get_file_info(paths))

    def get_file_info_selector(self, selector):
        return self._held(lambda: self.local.get_file_info(selector))

    def open_input_stream(self, path):
        with self.lock:
            self.opened += 1
        return self._held(lambda: self.local.open_input_stream(path))

    def open_input_file(self, path):
        return self._held(lambda: self.local.open_input_file(path))

    def get_type_name(self):
        return "counting"

    def equals(self, other):
        return self is other

    def normalize_path(self, path):
        return path

    def _refused(self, *args):  # reading writes nothing
        raise AssertionError(f"a write while reading: {args}")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = _refused
    delete_file = move = copy_file = open_output_stream = open_append_stream = _refused


def _trials(root: Path, n: int) -> list[str]:
    """n trial directories: finished ones (final checkpoint and end marker) and unfinished."""
    dirs = []
    for i in range(n):
        trial = root / f"trial_{i:05d}"
        (trial / "checkpoint_000000").mkdir(parents=True)
        (trial / "result.json").write_text(json.dumps({"epoch": 1, "robust_acc": i / n}) + "\n")
        if i % 3:
            final = trial / "checkpoint_000001" / FINAL_DIR
            final.mkdir(parents=True)
            (final / RESULT_FILE).write_text(json.dumps({"metrics": {}, "epochs": []}))
            marker = marker_text("TERMINATED", {"robust_acc": i / n}, ["robust_acc"])
            (trial / END_MARKER).write_text(marker)
        dirs.append(str(trial))
    return dirs


def _seen(record) -> tuple:
    return (record.checkpoints, record.final, record.marker, record.rows)


def test_the_directories_are_read_at_once_and_each_record_is_the_serial_one(tmp_path):
    dirs = _trials(tmp_path, 40)
    handler = _CountingHandler()
    read = read_records(pafs.PyFileSystem(handler), dirs, [False] * 40)
    assert 1 < handler.most <= READERS
    serial = [read_record(pafs.LocalFileSystem(), d) for d in dirs]
    assert [_seen(r) for r in read] == [_seen(r) for r in serial]  # the same, in order
    assert [r.final is not None for r in read] == [bool(i % 3) for i in range(40)]
    assert all(r.rows for r in read)


def test_of_a_settled_trial_on_object_storage_only_its_listing_is_read(tmp_path):
    """A listed marker is whole there (a PUT is atomic): no file is opened."""
    dirs = _trials(tmp_path, 30)  # 20 with an end marker, 10 without
    handler = _CountingHandler()
    read = read_records(pafs.PyFileSystem(handler), dirs, [True] * 30)
    assert handler.opened == 0  # no marker, no final result, no result.json
    assert [r.has_marker for r in read] == [bool(i % 3) for i in range(30)]
    assert handler.opened == 0
    assert read[1].final == "checkpoint_000001" and handler.opened == 1  # read when asked
    assert read[1].marker["status"] == "TERMINATED" and handler.opened == 2


def test_of_a_settled_trial_on_a_disk_the_marker_is_read_and_a_torn_one_is_none(tmp_path):
    """On a disk a marker an older robprune wrote in place may be torn by a kill: it is read,
    and a torn one counts as missing (reconciliation writes it again)."""
    dirs = _trials(tmp_path, 3)
    (Path(dirs[2]) / END_MARKER).write_text('{"status": "TERMIN')  # cut by a kill
    read = read_records(pafs.LocalFileSystem(), dirs, [True] * 3)
    assert [r.has_marker for r in read] == [False, True, False]
    assert "marker" in vars(read[1])  # it was read, not taken from the listing


def test_one_directory_is_read_without_threads(tmp_path):
    (directory,) = _trials(tmp_path, 1)
    (read,) = read_records(pafs.LocalFileSystem(), [directory], [False])
    assert _seen(read) == _seen(read_record(pafs.LocalFileSystem(), directory))
    assert read_records(pafs.LocalFileSystem(), [], []) == []


def test_a_directory_that_lists_nothing_still_has_its_marker_read(tmp_path):
    """A listing that fails (storage.listing gives nothing) must not hide an end marker: the
    marker would be written again from nothing."""
    (directory,) = _trials(tmp_path, 2)[1:]

    class _NoListing(_CountingHandler):
        def get_file_info_selector(self, selector):
            raise OSError("listing refused")

    handler = _NoListing()
    (read,) = read_records(pafs.PyFileSystem(handler), [directory], [True])
    assert read.checkpoints == [] and read.marker is not None
    assert read.marker["status"] == "TERMINATED"
