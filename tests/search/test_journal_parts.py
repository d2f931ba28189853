"""The journal on object storage as a base plus appended parts: what is read back equals what
was written, at every moment, and the bytes uploaded stay linear in the journal's size."""

from __future__ import annotations

import random

import pyarrow.fs as pafs

from search.state.journal_parts import JournalUploads, read_journal, write_whole


def _store(tmp_path):
    fs = pafs.LocalFileSystem()
    (tmp_path / "optuna").mkdir()
    return fs, str(tmp_path / "optuna" / "journal.log")


def test_every_push_reads_back_whole_and_uploads_are_linear(tmp_path):
    fs, path = _store(tmp_path)
    rng = random.Random(0)
    uploads, journal, uploaded = JournalUploads(), b"", 0
    assert read_journal(fs, path) is None
    for i in range(2000):  # one record per trial, of varying length, as Optuna appends them
        journal += b'{"op_code": 6, "trial_id": %d, "pad": "%s"}\n' % (
            i,
            b"x" * rng.randrange(300),
        )
        uploaded += uploads.push(fs, path, journal)
        if i % 7 == 0 or i == 1999:  # read back often: a part's boundary is never lost
            assert read_journal(fs, path) == journal
    whole_each_time = sum(range(len(journal) // 2000, len(journal), len(journal) // 2000))
    assert uploaded <= 3 * len(journal), (uploaded, len(journal))
    assert uploaded < whole_each_time / 100  # what uploading the whole file each time costs


def test_a_push_with_nothing_new_uploads_nothing(tmp_path):
    fs, path = _store(tmp_path)
    uploads = JournalUploads()
    assert uploads.push(fs, path, b"a\n") == 2
    assert uploads.push(fs, path, b"a\n") == 0


def test_a_new_driver_starts_with_a_whole_upload_and_parts_are_dropped(tmp_path):
    fs, path = _store(tmp_path)
    first = JournalUploads()
    first.push(fs, path, b"x" * 100)
    first.push(fs, path, b"x" * 100 + b"y" * 10)  # a part
    assert read_journal(fs, path) == b"x" * 100 + b"y" * 10
    second = JournalUploads()  # another process after a head loss: stored size unknown
    second.push(fs, path, b"x" * 100 + b"y" * 10 + b"z")
    assert read_journal(fs, path) == b"x" * 100 + b"y" * 10 + b"z"
    assert not list((tmp_path / "optuna" / "journal.log.parts").iterdir())


def test_an_interrupted_compaction_and_a_lost_part(tmp_path):
    fs, path = _store(tmp_path)
    uploads = JournalUploads()
    uploads.push(fs, path, b"a" * 100)
    uploads.push(fs, path, b"a" * 100 + b"b" * 10)
    # a compaction that wrote the base but died before removing the parts
    with fs.open_output_stream(path) as handle:
        handle.write(b"a" * 100 + b"b" * 10)
    assert read_journal(fs, path) == b"a" * 100 + b"b" * 10
    # a part that starts past the end (the one before it never arrived) is not read
    parts = tmp_path / "optuna" / "journal.log.parts"
    (parts / f"{200:016d}").write_bytes(b"c" * 5)
    assert read_journal(fs, path) == b"a" * 100 + b"b" * 10
    write_whole(fs, path, b"d")
    assert read_journal(fs, path) == b"d" and not list(parts.iterdir())
