"""Shared fixtures: a fast digits trial config and a session-wide dense-model cache."""

from __future__ import annotations

import os

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Tiny models on a 2-core machine: one intra-op thread is faster than two that spin.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def dense_cache(tmp_path_factory):
    """One dense-model cache for the whole session: each dense recipe trains once."""
    return tmp_path_factory.mktemp("dense-cache")
