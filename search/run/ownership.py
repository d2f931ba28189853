"""Which driver owns an experiment, and the Ray processes a killed driver left behind.

A driver records itself in EXPERIMENT/driver.json before it starts Ray: its PID (with the
process start time, so a reused PID is not mistaken for it), its host and, when it starts its
own local Ray, the temporary directory that Ray keeps its session in (unique to this driver);
every Ray process it starts inherits an environment mark naming that directory. A resume on the
same host refuses to run beside a live driver, and ends the processes of a dead driver's Ray by
PID: those whose command line names that directory or whose environment carries its mark (Ray
renames its workers' command lines). Nothing is killed by name.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from robprune.errors import BadInput
from search.state import storage
from search.state.experiment import Experiment

__all__ = [
    "DRIVER_FILE",
    "record_driver",
    "reap_dead_driver",
    "session_processes",
    "await_session_end",
    "own_descendants",
    "parent_pid",
    "ray_temp_dir",
    "owner_mark",
    "OWNER_ENV",
    "driver_state",
]

DRIVER_FILE = "driver.json"
#: Environment variable every Ray process of a driver inherits: its Ray directory's name.
OWNER_ENV = "ROBPRUNE_RAY_OWNER"


def _cmdlines() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line), from /proc (Linux); empty elsewhere."""
    out: dict[int, tuple[int, str]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        out[int(entry)] = (ppid, raw.replace(b"\0", b" ").decode(errors="replace"))
    return out


def _environ_has(pid: int, entry: bytes) -> bool:
    try:
        return entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def session_processes(ray_dir: str) -> list[int]:
    """PIDs of the processes of one driver's Ray: their command line names its directory, or
    (Ray renames its workers' command lines) their environment carries its owner mark."""
    if not ray_dir or len(ray_dir) < 12:
        return []
    me = os.getpid()
    mark = f"{OWNER_ENV}={Path(ray_dir).name}".encode()
    return sorted(
        pid
        for pid, (_, cmd) in _cmdlines().items()
        if pid != me and (ray_dir in cmd or _environ_has(pid, mark))
    )


@contextmanager
def owner_mark(ray_dir: str | None) -> Iterator[None]:
    """Mark the Ray processes started in the body as this driver's (they inherit the mark)."""
    if not ray_dir:
        yield
        return
    previous = os.environ.get(OWNER_ENV)
    os.environ[OWNER_ENV] = Path(ray_dir).name
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(OWNER_ENV, None)
        else:
            os.environ[OWNER_ENV] = previous


def ray_temp_dir() -> str:
    """A fresh directory name for a local Ray's sessions, under $RAY_TMPDIR as Ray's own
    default is (else /tmp); short: Ray's socket paths are long."""
    base = os.environ.get("RAY_TMPDIR") or "/tmp"
    return f"{base.rstrip('/')}/robprune-ray-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def own_descendants() -> list[int]:
    """PIDs of every process this process started, directly or not."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in _cmdlines().items():
        children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    todo = [os.getpid()]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _read(exp: Experiment) -> dict[str, Any] | None:
    try:
        return json.loads(storage.read_file(exp, DRIVER_FILE))
    except (FileNotFoundError, ValueError, OSError):
        return None


def reap_dead_driver(exp: Experiment) -> int:
    """Refuse if a live driver runs `exp` here; end a dead driver's Ray processes.

    Returns how many processes were ended.
    """
    record = _read(exp)
    if not record or record.get("host") != socket.gethostname():
        return 0  # another machine's driver: nothing of it runs here
    pid = int(record.get("pid", 0))
    if pid and pid != os.getpid() and _start_time(pid) == record.get("pid_start"):
        raise BadInput(
            f"{exp.location} is being run by PID {pid} on this host; stop it first "
            "(Ctrl-C) or wait for it to finish"
        )
    session = str(record.get("ray_temp_dir") or "")
    if not session:
        _release_journal_lock(exp)
        return 0
    ended = _end_session(session)
    _release_journal_lock(exp)  # after its Ray processes: none of them can hold it any more
    return ended


def _end_session(ray_dir: str) -> int:
    """SIGKILL every process of one Ray session; returns how many there were."""
    ended: set[int] = set()
    for _ in range(10):  # workers may start while their parents are ended
        pids = session_processes(ray_dir)
        if not pids:
            break
        _kill(pids)
        ended.update(pids)
        time.sleep(0.3)
    return len(ended)


#: Seconds a shut-down local Ray's processes get to exit on their own.
EXIT_GRACE_S = 10.0


def await_session_end(ray_dir: str) -> int:
    """After `ray.shutdown()` of a Ray this driver started: wait for its processes to exit
    (shutdown returns before all have), then end any still there, so that a command returns
    with none of its processes left. Returns how many had to be ended."""
    deadline = time.monotonic() + EXIT_GRACE_S
    while session_processes(ray_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _end_session(ray_dir)


def _release_journal_lock(exp: Experiment) -> None:
    """A driver killed while it held the Optuna journal's lock leaves the lock behind; Optuna
    would wait out its grace period (30 s) on every open before forcing it. The driver is
    known dead here, so the lock is stale."""
    lock = Path(f"{exp.journal_path}.lock")
    if lock.is_symlink() or lock.exists():
        lock.unlink(missing_ok=True)


def _stat_field(pid: int, index: int) -> int | None:
    """Field `index` of /proc/PID/stat after the command name (0: state); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[index])


def parent_pid(pid: int) -> int | None:
    """The process's parent's PID; None if the process is gone."""
    return _stat_field(pid, 1)


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the PID, it names one process."""
    return _stat_field(pid, 19)


def record_driver(exp: Experiment, *, ray_dir: str | None) -> None:
    """Write EXPERIMENT/driver.json for this process, before it starts its own Ray in
    `ray_dir` (None: it joins a cluster or a Ray already running in this process)."""
    payload = {
        "pid": os.getpid(),
        "pid_start": _start_time(os.getpid()),
        "host": socket.gethostname(),
        "ray_temp_dir": ray_dir,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    storage.write_file(exp, DRIVER_FILE, json.dumps(payload, indent=2) + "\n")


def driver_state(exp: Experiment) -> dict[str, Any] | None:
    """The recorded driver (pid, host, started) and whether it still runs: `alive` is True or
    False on its own host, None elsewhere (another machine's processes are not visible)."""
    record = _read(exp)
    if not record:
        return None
    alive = None
    if record.get("host") == socket.gethostname():
        pid = int(record.get("pid", 0))
        alive = bool(pid) and _start_time(pid) == record.get("pid_start")
    return {**record, "alive": alive}
