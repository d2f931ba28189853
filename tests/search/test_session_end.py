"""A command that started its own Ray returns with none of that Ray's processes left
(`search.run.ownership.await_session_end`, called by `ray_session` after `ray.shutdown()`,
which returns before all of them have exited)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from search.run import ownership
from search.run.ownership import OWNER_ENV, await_session_end, session_processes


def _process_of(ray_dir: str, seconds: float) -> subprocess.Popen:
    """A process carrying the session's owner mark, as Ray's workers do, living `seconds`."""
    env = {**os.environ, OWNER_ENV: ray_dir.rsplit("/", 1)[-1]}
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"], env=env)


def test_a_process_that_outlives_the_grace_is_ended(tmp_path, monkeypatch):
    ray_dir = str(tmp_path / "robprune-ray-test-1")
    monkeypatch.setattr(ownership, "EXIT_GRACE_S", 0.5)
    lingering = _process_of(ray_dir, 120)
    time.sleep(0.3)  # its environment is readable
    assert session_processes(ray_dir) == [lingering.pid]
    assert await_session_end(ray_dir) == 1
    assert lingering.wait(timeout=10) != 0  # killed, not ended by itself
    assert session_processes(ray_dir) == []


def test_a_process_that_exits_within_the_grace_is_left_to_exit(tmp_path):
    ray_dir = str(tmp_path / "robprune-ray-test-2")
    exiting = _process_of(ray_dir, 0.5)
    time.sleep(0.2)
    assert await_session_end(ray_dir) == 0
    assert exiting.wait(timeout=10) == 0
