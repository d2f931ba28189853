"""A trial's recorded failure is repeated only under the driver's Ray that recorded it
(search.run.trainable): a worker orphaned by a killed driver can fail for its lost
environment, which must not fail the trial's attempts after the resume."""

from __future__ import annotations

import pyarrow.fs as pafs

from search.run.ownership import OWNER_ENV
from search.run.trainable import _previous_failure, _record_failure


def test_a_failure_is_repeated_under_its_own_driver_only(tmp_path, monkeypatch):
    marker = (pafs.LocalFileSystem(), str(tmp_path / "robprune-trial-error.txt"))
    monkeypatch.setenv(OWNER_ENV, "robprune-ray-1-aaaa")
    _record_failure(marker, ValueError("bad config\nmore"))
    assert _previous_failure(marker) == "ValueError: bad config"
    monkeypatch.setenv(OWNER_ENV, "robprune-ray-2-bbbb")  # a resume: another driver's Ray
    assert _previous_failure(marker) is None


def test_a_failure_recorded_without_an_owner_is_repeated(tmp_path):
    path = tmp_path / "robprune-trial-error.txt"
    path.write_text("ValueError: bad config")  # as recorded before the owner line
    assert _previous_failure((pafs.LocalFileSystem(), str(path))) == "ValueError: bad config"
