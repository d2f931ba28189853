"""`robprune submit | jobs | status | logs | stop` and `resume [--submit]`.

Each prints plain lines a person can read and a script can grep; errors are `BadInput`
(one line, exit 2). Nothing printed here carries a credential: URIs are redacted and the
values of secret-looking environment variables are scrubbed from job logs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from cluster.client import RobpruneJob, call, connect, get_robprune_job, is_robprune
from cluster.redact import looks_secret, redact_uri, scrub
from cluster.submit import describe, plan_resume, plan_search, submit
from robprune.errors import BadInput
from search.plan.cli import plan_main
from search.run.overview import experiment_overview, is_experiment
from search.status_cli import format_overview

__all__ = [
    "submit_main",
    "jobs_main",
    "status_main",
    "logs_main",
    "stop_main",
    "resume_main",
    "format_status",
]

_TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def _secrets() -> list[str]:
    """Values of this machine's secret-looking environment variables (to scrub output)."""
    return [v for k, v in os.environ.items() if looks_secret(k) and v]


def _say(text: str, stream: Any = None) -> None:
    print(scrub(text, _secrets()), file=stream or sys.stdout, flush=True)


def _follow_up(job_id: str, address: str) -> list[str]:
    at = f"--address {address}"
    return [
        f"  robprune status {job_id} {at}",
        f"  robprune logs {job_id} --follow {at}",
        f"  robprune stop {job_id} {at}",
    ]


def _submit(args: argparse.Namespace, plan: Any) -> int:
    job_id, address = submit(args, plan)
    _say(f"submitted {job_id} ({plan.command} {plan.name}) to {address}")
    _say(f"experiment: {describe(plan)}")
    _say("follow it with:\n" + "\n".join(_follow_up(job_id, address)))
    _say(f"  robprune resume {describe(plan)} --submit --address {address}   (after a stop)")
    return 0


def submit_main(args: argparse.Namespace) -> int:
    job = plan_search(args)  # validates the spec exactly as `robprune search` would
    if getattr(args, "plan", False):  # what it would cost; nothing is sent
        return plan_main(args)
    return _submit(args, job)


def resume_main(args: argparse.Namespace) -> int:
    """`resume --submit`: the resume as a job on the cluster (plain `resume` is search.cli's)."""
    return _submit(args, plan_resume(args))


#: The overview's fields that hold a storage location (URIs are shown redacted).
_WHERE = ("location", "results", "report")


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def jobs_main(args: argparse.Namespace) -> int:
    client = connect(args.address)
    jobs = [
        RobpruneJob.from_details(d) for d in call(client, "jobs", "list_jobs") if is_robprune(d)
    ]
    if not jobs:
        _say(f"no robprune jobs on {client.get_address()}")
        return 0
    jobs.sort(key=lambda j: j.start_time or 0)
    width = max(len(j.job_id) for j in jobs)
    for job in jobs:
        _say(
            f"{job.job_id:<{width}}  {job.status:<9}  {job.command:<6}  "
            f"started {_when(job.start_time)}  {redact_uri(job.experiment)}"
        )
    return 0


def format_status(job: RobpruneJob, view: dict[str, Any] | None, address: str) -> str:
    """The lines `robprune status JOB` prints: the job's state from Ray, then its experiment
    as `robprune status EXPERIMENT` shows it (read from the storage)."""
    lines = [f"job:        {job.job_id}  {job.status}  ({job.message.strip() or '-'})"]
    lines.append(f"command:    {job.command}, started {_when(job.start_time)}")
    if view is None:
        lines.append(f"experiment: {redact_uri(job.experiment)}")
        lines.append("progress:   none written yet (the job is starting or in its dense stage)")
    else:
        lines.append(format_overview(_shown(view)))
    if job.status in ("STOPPED", "FAILED"):
        where = redact_uri(job.experiment)
        lines.append(f"resume:     robprune resume {where} --submit --address {address}")
    return "\n".join(lines)


def _shown(view: dict[str, Any]) -> dict[str, Any]:
    """The overview with its storage locations redacted (a URI's credentials never shown)."""
    return {**view, **{k: redact_uri(view[k]) if view.get(k) else view.get(k) for k in _WHERE}}


def _overview(job: RobpruneJob) -> dict[str, Any] | None:
    if not job.experiment:
        return None

    try:
        return experiment_overview(job.experiment)
    except BadInput:  # not created yet (the job is starting)
        return None
    except OSError as exc:
        _say(f"warning: cannot read progress from the storage: {exc}", sys.stderr)
        return None


def status_main(args: argparse.Namespace) -> int:
    """`robprune status TARGET`: an experiment (any storage) or, with a cluster, a job."""
    if is_experiment(args.target):  # printed as a job's experiment is: one code path
        view = _shown(experiment_overview(args.target))
        _say(json.dumps(view, indent=1, default=str) if args.json else format_overview(view))
        return 0
    if not (
        args.address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    ):
        raise BadInput(
            f"{args.target}: no experiment at this path; a job id needs --address "
            "http://HEAD:8265 (or RAY_API_SERVER_ADDRESS)"
        )
    client = connect(args.address)
    job = get_robprune_job(client, args.target)
    view = _overview(job)
    if args.json:
        view = _shown(view) if view else None
        _say(json.dumps({"job": job.job_id, "job_status": job.status, "experiment": view}))
        return 0
    _say(format_status(job, view, client.get_address()))
    return 0


def logs_main(args: argparse.Namespace) -> int:
    client = connect(args.address)
    get_robprune_job(client, args.job)
    if not args.follow:
        _say(call(client, args.job, "get_job_logs", args.job).rstrip("\n"))
        return 0

    async def follow() -> None:
        async for chunk in client.tail_job_logs(args.job):
            sys.stdout.write(scrub(chunk, _secrets()))
            sys.stdout.flush()

    asyncio.run(follow())
    return 0


def stop_main(args: argparse.Namespace) -> int:
    client = connect(args.address)
    job = get_robprune_job(client, args.job)
    if job.status in _TERMINAL:
        _say(f"{job.job_id} already ended: {job.status}")
        return 0
    call(client, args.job, "stop_job", args.job)
    _say(f"stopping {job.job_id}; its experiment stays resumable:")
    _say(
        f"  robprune resume {redact_uri(job.experiment)} --submit --address {client.get_address()}"
    )
    return 0
