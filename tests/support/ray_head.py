"""A real Ray head on loopback for the cluster tests: own temp dir, free ports, ended by PID.

`ray stop` cannot be aimed at one temp dir (it stops every Ray process on the machine), and
other Ray sessions may run beside this one, so the head's processes are found by their temp
dir on the command line (GCS, raylet, dashboard, monitors) plus all their descendants
(workers, agents, job drivers), and ended by PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
LOOPBACK_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line), from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        out[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmd)
    return out


def processes_of(*marks: str) -> set[int]:
    """Every process whose command line holds one of `marks` (the Ray instance's temp dir, its
    GCS address: the Ray client server names only the latter), with their descendants."""
    procs = _processes()
    roots = {
        pid
        for pid, (_, cmd) in procs.items()
        if any(m in cmd for m in marks) and pid != os.getpid()
    }
    children = defaultdict(list)
    for pid, (ppid, _) in procs.items():
        children[ppid].append(pid)
    found, todo = set(roots), list(roots)
    while todo:
        for child in children[todo.pop()]:
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def end_processes(*marks: str, grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`, for every process `processes_of(*marks)`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_of(*marks):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and processes_of(*marks):
            time.sleep(0.2)
        if not processes_of(*marks):
            return


def _node_ports() -> list[str]:
    """Free ports for what a node otherwise binds at fixed defaults (the dashboard agent's
    52365 among them): another Ray on this machine would make that agent, and so every job
    submission, fail."""
    flags = (
        "--node-manager-port", "--object-manager-port", "--metrics-export-port",
        "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
    )  # fmt: skip
    return [item for flag in flags for item in (flag, str(free_port()))]


class RayHead:
    """`ray start --head` on 127.0.0.1 with its own temp dir and free ports."""

    def __init__(self, temp_dir: Path, env: dict[str, str], num_cpus: int = 2):
        self.temp_dir = str(temp_dir)
        self.env = env
        self.num_cpus = num_cpus
        self.gcs_port = free_port()
        self.dashboard_port = free_port()

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self) -> RayHead:
        Path(self.temp_dir).mkdir(parents=True, exist_ok=True)
        cmd = [
            RAY, "start", "--head", "--node-ip-address", "127.0.0.1",
            "--port", str(self.gcs_port), "--dashboard-host", "127.0.0.1",
            "--dashboard-port", str(self.dashboard_port), "--temp-dir", self.temp_dir,
            "--ray-client-server-port", str(free_port()),
            "--num-cpus", str(self.num_cpus), "--num-gpus", "0", "--disable-usage-stats",
            *_node_ports(),
        ]  # fmt: skip
        run = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120)
        if run.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed: {run.stdout[-2000:]} {run.stderr[-2000:]}")
        return self

    def stop(self) -> None:
        end_processes(self.temp_dir, f"127.0.0.1:{self.gcs_port} ")
