"""The export's results folder changes for readers in one step (search.state.storage.
switch_version): no table is ever missing; a reader that resolves `results` once sees the
previous complete set or the new one, never a mix; the version before is kept for a reader
still inside it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from search.state.storage import switch_version

NAMES = ("trials.parquet", "epochs.parquet", "layers.parquet", "tensorboard/events")


def _version(parent: Path, tag: str) -> Path:
    staging = parent / f".results-staging-{tag}"
    for name in NAMES:
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_text(tag)
    return staging


def test_an_older_layout_is_moved_aside_and_two_versions_are_kept(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "trials.parquet").write_text("old")
    switch_version(results, _version(tmp_path, "a"))
    assert results.is_symlink() and (results / "trials.parquet").read_text() == "a"
    assert [p.read_text() for p in tmp_path.glob(".results-v0-*/trials.parquet")] == ["old"]
    switch_version(results, _version(tmp_path, "b"))
    kept = sorted(p.read_text() for p in tmp_path.glob(".results-v*/trials.parquet"))
    assert kept == ["a", "b"]  # the current and the previous; the older layout removed
    assert not list(tmp_path.glob(".results-link-*"))


def test_a_reader_never_sees_a_mixed_or_missing_set(tmp_path):
    results = tmp_path / "results"
    switch_version(results, _version(tmp_path, "0"))
    mixed: list[set[str]] = []
    done = threading.Event()
    switches = [0]  # how many switches have begun
    whole = [0]  # complete sets read

    def read() -> None:
        while not done.is_set():
            before = switches[0]
            try:
                pinned = results.resolve()  # one version for the whole set
                seen = {(pinned / name).read_text() for name in NAMES}
                (results / "layers.parquet").read_text()  # through the link: never missing
            except FileNotFoundError as exc:
                # only the version before the current one is kept: a reader descheduled
                # across two switches (a loaded machine) is outside the promise
                if switches[0] - before < 2:
                    mixed.append({str(exc)})
                continue
            if len(seen) != 1:
                mixed.append(seen)
            whole[0] += 1

    reader = threading.Thread(target=read)
    reader.start()
    for tag in range(1, 60):  # exports seconds apart in truth; a reader outlives one switch
        staging = _version(tmp_path, str(tag))
        switches[0] += 1
        switch_version(results, staging)
        time.sleep(0.003)
    done.set()
    reader.join()
    assert not mixed, mixed[:3]
    assert whole[0] > 0
    assert (results / "trials.parquet").read_text() == "59"
