"""The Ray head (and moto S3 server) the cluster tests share: one for the session, started
when a test first asks for it (tests/support/cluster.py)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.cluster import Cluster


@pytest.fixture(scope="session")
def cluster():
    root = Path(tempfile.mkdtemp(prefix="rp-cl-", dir="/tmp"))  # short: Ray's socket paths
    c = Cluster(root)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)
