"""`robprune plan SPEC` (and `search --plan`, `submit --plan`): validate and cost, no Ray.

The options are declared with the other commands' in robprune/cli_args.py. Bad input (the spec,
`--workers`, `--epoch-seconds`) raises `BadInput`: one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from robprune.errors import BadInput
from search.plan.plan import make_plan, plan_dict, render_plan
from search.spec.parse import load_spec

__all__ = ["plan_main", "print_plan"]


def _check(args: argparse.Namespace) -> tuple[int | None, float | None]:
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise BadInput(f"--workers: must be a positive integer, got {workers}")
    seconds = getattr(args, "epoch_seconds", None)
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise BadInput(f"--epoch-seconds: must be a positive number of seconds, got {seconds}")
    return workers, seconds


def print_plan(spec: Any, args: argparse.Namespace, stream: Any = None) -> None:
    """Plan a validated spec and print it (text, or JSON with --json)."""
    stream = stream or sys.stdout
    workers, seconds = _check(args)
    plan = make_plan(
        spec,
        workers=workers,
        epoch_seconds=seconds,
        measure=not getattr(args, "no_calibrate", False),
        log=lambda message: print(message, file=sys.stderr, flush=True),
    )
    if getattr(args, "json", False):
        print(json.dumps(plan_dict(plan), indent=1, default=str), file=stream)
    else:
        print(render_plan(plan), file=stream)


def plan_main(args: argparse.Namespace) -> int:
    _check(args)  # cheap argument errors first
    spec = load_spec(
        args.spec,
        getattr(args, "overrides", []) or [],
        name=getattr(args, "name", None),
        storage=getattr(args, "storage", None),
        timestamp=False,
    )
    print_plan(spec, args)
    return 0
