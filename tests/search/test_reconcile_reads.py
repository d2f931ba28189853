"""Reconciliation reads the snapshot's trial directories several at a time, and of a trial the
snapshot already finished only what its decision needs (`search.run.trial_record.read_records`): on
object storage each file is a round trip, and read one after another, four per trial, they
made most of a killed search's resume at thousands of trials."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs

from search.run.end_marker import END_MARKER, marker_text
from search.run.trial_record import READERS, read_record, read_records
from search.state.trial_files import FINAL_DIR, RESULT_FILE
from tests.support.counting_fs import CountingHandler


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
    handler = CountingHandler()
    read = read_records(pafs.PyFileSystem(handler), dirs, [False] * 40)
    assert 1 < handler.most <= READERS
    serial = [read_record(pafs.LocalFileSystem(), d) for d in dirs]
    assert [_seen(r) for r in read] == [_seen(r) for r in serial]  # the same, in order
    assert [r.final is not None for r in read] == [bool(i % 3) for i in range(40)]
    assert all(r.rows for r in read)


def test_of_a_settled_trial_on_object_storage_only_its_listing_is_read(tmp_path):
    """A listed marker is whole there (a PUT is atomic): no file is opened."""
    dirs = _trials(tmp_path, 30)  # 20 with an end marker, 10 without
    handler = CountingHandler()
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

    class _NoListing(CountingHandler):
        def get_file_info_selector(self, selector):
            raise OSError("listing refused")

    handler = _NoListing()
    (read,) = read_records(pafs.PyFileSystem(handler), [directory], [True])
    assert read.checkpoints == [] and read.marker is not None
    assert read.marker["status"] == "TERMINATED"
