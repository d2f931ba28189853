"""Shared fixtures (a session-wide dense-model cache), the test tiers, and the rule that CI
skips nothing.

Tiers: every test under `tests/system/` (real Ray searches, kills, clusters) is marked
`system`, and a few long unit tests carry `slow`; `make test-fast` runs the rest
(`-m "not system and not slow"`), `make test` runs everything.

Under CI (environment variable `CI` set, as `.ci/run` does) a skipped test is reported as a
failure, except one that needs CUDA (`requirements.cuda_only`): every other part a test needs
is installed there, so a skip would hide an untested path (see `requirements.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Tiny models on a 2-core machine: one intra-op thread is faster than two that spin.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from tests.support.requirements import CUDA_REASON, IN_CI  # noqa: E402

_EXIT_STATUS = pytest.StashKey[int]()


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip_under_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not IN_CI or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if reason == CUDA_REASON:
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under CI, where only tests that need CUDA may skip: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())


_SYSTEM_DIR = Path(__file__).resolve().parent / "system"


def pytest_collection_modifyitems(config, items):
    """Mark the end-to-end tests under tests/system/ so the fast tier can leave them out."""
    for item in items:
        if _SYSTEM_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def dense_cache(tmp_path_factory):
    """One dense-model cache for the whole session: each dense recipe trains once."""
    return tmp_path_factory.mktemp("dense-cache")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    """Keep pytest's exit status for `pytest_unconfigure` below."""
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End the process without the interpreter's module teardown once pytest has finished.

    After a full run the process holds Ray's core worker and torch's thread pools; tearing
    their modules down at interpreter exit can crash in native code (a segmentation fault
    after the summary was printed), which would turn a passing suite into a failed command.
    Every result and report is written by now, so the exit status is pytest's own.
    """
    if _EXIT_STATUS not in config.stash:
        return
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(config.stash[_EXIT_STATUS])
