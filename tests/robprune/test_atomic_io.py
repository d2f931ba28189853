"""robprune.io.atomic: atomic writes with unique temporaries, the flock lock, content keys."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from robprune.io.atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    content_key,
    file_lock,
    read_json,
)


def test_writes_round_trip_and_leave_no_temporaries(tmp_path: Path) -> None:
    atomic_write_bytes(b"\x00\x01", tmp_path / "a" / "b.bin")
    atomic_write_text("héllo", tmp_path / "t.txt")
    atomic_write_json({"x": [1, 2.5], "p": Path("/q")}, tmp_path / "j.json")
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t.txt").read_text() == "héllo"
    assert read_json(tmp_path / "j.json") == {"x": [1, 2.5], "p": "/q"}
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_failed_write_keeps_previous_content(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    atomic_write_json({"v": 1}, target)

    def broken(tmp: Path) -> None:
        tmp.write_text('{"v": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, broken)
    assert read_json(target) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_concurrent_writers_never_share_a_temporary(tmp_path: Path) -> None:
    """The old fixed `.NAME.tmp` let two writers interleave into one file; now each is whole."""
    target = tmp_path / "report.md"
    payloads = [bytes([65 + i]) * 200_000 for i in range(8)]
    errors: list[BaseException] = []

    def write(data: bytes) -> None:
        try:
            for _ in range(5):
                atomic_write_bytes(data, target)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in payloads
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_file_mode_follows_umask_like_plain_open(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_text("x", tmp_path / "m.txt")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def _hold(path: str, log: str, tag: str) -> None:
    with file_lock(path):
        with open(log, "a") as f:
            f.write(f"{tag}+\n")
        time.sleep(0.3)
        with open(log, "a") as f:
            f.write(f"{tag}-\n")


def test_file_lock_serialises_processes(tmp_path: Path) -> None:
    lock, log = str(tmp_path / ".x.lock"), str(tmp_path / "log")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hold, args=(lock, log, t)) for t in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    lines = Path(log).read_text().split()
    assert len(lines) == 4
    # Never interleaved: every acquire is followed by the same holder's release.
    assert lines[0][0] == lines[1][0] and lines[2][0] == lines[3][0]
    assert lines[0][1] == "+" and lines[1][1] == "-"


def test_content_key_ignores_key_order_and_sees_values() -> None:
    a = content_key({"b": 1, "a": [1, 2]})
    assert a == content_key({"a": [1, 2], "b": 1})
    assert a != content_key({"a": [1, 2], "b": 2})
    assert len(a) == 20 and len(content_key({}, length=64)) == 64
    # Same spelling as before the move, so existing caches keep their keys.
    import hashlib

    blob = json.dumps({"a": 1}, sort_keys=True, separators=(",", ":"), default=str)
    assert content_key({"a": 1}) == hashlib.sha256(blob.encode()).hexdigest()[:20]
