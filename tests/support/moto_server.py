"""A moto S3 server on loopback for one test: a free port, waited for until it answers, ended
by its PID afterwards (never by name)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.ray_head import free_port
from tests.support.requirements import MOTO_SERVER

__all__ = ["moto_server"]


@contextmanager
def moto_server(command: list[str] | None = None, *, start_s: float = 30.0) -> Iterator[int]:
    """Run `command` (default: moto's `moto_server`) with `-H 127.0.0.1 -p PORT`; yields PORT
    once it accepts connections."""
    port = free_port()
    proc = subprocess.Popen(
        [*(command or [str(MOTO_SERVER)]), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    what = command or MOTO_SERVER
                    raise RuntimeError(f"{what} did not serve on port {port}") from None
                time.sleep(0.1)
        yield port
    finally:
        proc.kill()
        proc.wait()
