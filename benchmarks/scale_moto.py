"""The S3 of the scale benchmarks: a moto server on loopback, plain or with indexed listings
(`moto_indexed.py`), a bucket in it, and a copy of the bucket out of it (`--keep`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
S3_LISTINGS = ("moto", "indexed")  # how the S3 server (moto) answers a listing

__all__ = ["S3_LISTINGS", "copy_bucket", "free_port", "start_moto"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto(env: dict[str, str], listing: str = "moto") -> tuple[subprocess.Popen, str]:
    """A moto S3 server on loopback and the storage URI of a bucket in it. `listing`
    "indexed": moto with listings that read only the keys under their prefix, as S3's do
    (`moto_indexed.py`); "moto": moto as it is, whose listings walk the whole bucket."""
    import pyarrow.fs as pafs

    venv = Path(sys.executable).parent / "moto_server"  # the dev extra's, as the tests use
    server = [str(venv) if venv.exists() else shutil.which("moto_server") or "moto_server"]
    if listing == "indexed":
        server = [sys.executable, str(BENCH / "moto_indexed.py")]
    port = free_port()
    proc = subprocess.Popen(
        [*server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    endpoint = f"http://127.0.0.1:{port}"
    env.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    env.update(AWS_DEFAULT_REGION="us-east-1")
    fs = pafs.S3FileSystem(
        access_key="test",
        secret_key="test",
        region="us-east-1",
        scheme="http",
        endpoint_override=endpoint,
        allow_bucket_creation=True,
    )
    fs.create_dir("robprune")
    query = f"endpoint_override={endpoint}&scheme=http&region=us-east-1&allow_bucket_creation=true"
    return proc, f"s3://robprune/bench?{query}"


def copy_bucket(storage: str, into: Path) -> Path:
    """Every object under the S3 storage URI, copied into a local folder."""
    import pyarrow.fs as pafs

    from search.state import storage as state_storage

    fs, path = state_storage.filesystem(storage)
    pafs.copy_files(
        path, str(into), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem()
    )
    return into
