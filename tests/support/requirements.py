"""When a test may skip: on a developer's machine only, never under CI (except without CUDA).

`make setup` installs everything the suite needs (the dev extras bring moto[server]; `.ci/run`
installs Chromium and runs as root, so a tmpfs can be mounted). Under CI (environment variable
`CI` set, as `.ci/run` does) a missing part is therefore a broken environment, and a test that
skipped would hide an untested path: `require` fails there instead. `conftest.py` turns any
other skip under CI into a failure too, so a new `pytest.skip` cannot slip through; tests that
need CUDA are the one exception (`cuda_only`).
"""

from __future__ import annotations

import os
import shutil
import sys

import pytest

__all__ = ["CUDA_REASON", "IN_CI", "MOTO_SERVER", "cuda_only", "require"]

IN_CI = bool(os.environ.get("CI"))
CUDA_REASON = "needs CUDA"

_VENV_MOTO = os.path.join(os.path.dirname(sys.executable), "moto_server")
#: The moto S3 server (dev extra `moto[server]`): $MOTO_SERVER, the venv's, or on PATH.
MOTO_SERVER = (
    os.environ.get("MOTO_SERVER")
    or (_VENV_MOTO if os.access(_VENV_MOTO, os.X_OK) else None)
    or shutil.which("moto_server")
)


def require(condition: object, reason: str) -> None:
    """Skip when `condition` is false on a developer's machine; fail under CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must run this test, but {reason}", pytrace=False)
    pytest.skip(reason)


def cuda_only() -> pytest.MarkDecorator:
    """Skip without CUDA (also under CI: CI machines may have no GPU)."""
    import torch

    return pytest.mark.skipif(not torch.cuda.is_available(), reason=CUDA_REASON)
