"""Submitting `robprune search` or `robprune resume` to a Ray cluster as a job.

Everything the user can get wrong is checked here, before anything reaches the cluster: the
spec (the same validation as `robprune search`), the storage and data paths (a local path is
invisible to a cluster's other nodes), credentials in a URI, the job's environment. The job
itself runs `python -m cluster.job_entry`, which hands the spec to `robprune search` there.
"""

from __future__ import annotations

import secrets
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.client import call, connect, job_metadata, node_count
from cluster.redact import looks_secret, redact_uri, secret_query_keys
from robprune.errors import BadInput
from search.plan.footprint import estimate_bytes
from search.spec.parse import load_spec
from search.state.experiment import Experiment
from search.state.storage import join
from search.state.storage_check import check_new_location

__all__ = [
    "JobPlan",
    "SPEC_ENV",
    "local_path_problem",
    "plan_resume",
    "plan_search",
    "submit",
    "working_dir_excludes",
]

#: The job's environment variable that carries the resolved spec (YAML).
SPEC_ENV = "ROBPRUNE_SPEC_YAML"
#: Never uploaded with --working-dir: outputs and environments, not code.
_EXCLUDES = [".git", ".venv", "experiments", "runs", "report", "__pycache__", "*.pyc", ".cache"]


def working_dir_excludes() -> list[str]:
    return list(_EXCLUDES)


@dataclass(kw_only=True)
class JobPlan:
    """What will be submitted: the command the job runs and where its experiment lives."""

    command: str  # search | resume
    name: str
    experiment: str  # the experiment's location, as the cluster sees it
    args: list[str]  # arguments of `robprune COMMAND` on the cluster
    env: dict[str, str] = field(default_factory=dict)
    local_paths: dict[str, str] = field(default_factory=dict)  # key -> local path


def _is_uri(value: str) -> bool:
    return "://" in value and not value.startswith("file://")


def _check_uri_secrets(key: str, value: str) -> None:
    found = secret_query_keys(value)
    if found:
        raise BadInput(
            f"{key}: credentials in the URI ({', '.join(found)}) would be stored in the job's "
            "metadata and the experiment; give them to the cluster's nodes instead "
            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, an instance role, a Kubernetes secret)"
        )


def _local(value: str) -> str:
    """A local path as an absolute one: the job's working directory is not the user's."""
    return str(Path(value.removeprefix("file://")).expanduser().resolve())


def plan_search(args: Any) -> JobPlan:
    """Validate the spec here, exactly as `robprune search` would, and plan its job."""
    resume = bool(getattr(args, "resume", False))
    spec = load_spec(
        args.spec,
        list(args.overrides or []),
        name=args.name,
        storage=args.storage,
        timestamp=not resume,
    )  # the same BadInput as `robprune search`, before anything is sent
    local_paths: dict[str, str] = {}
    storage = spec.storage
    _check_uri_secrets("storage", storage)
    overrides: list[str] = []
    if not _is_uri(storage):
        storage = _local(storage)
        local_paths["storage"] = storage
    data_dir = (spec.raw.get("data") or {}).get("data_dir")
    if isinstance(data_dir, str):
        _check_uri_secrets("data.data_dir", data_dir)
        if not _is_uri(data_dir):
            local_paths["data.data_dir"] = _local(data_dir)
            overrides.append(f"data.data_dir={local_paths['data.data_dir']}")

    location = join(storage, spec.name)
    if not resume:
        _refuse_existing(location)
        if not _is_uri(storage):  # a bucket is checked by the job (the cluster's credentials)
            check_new_location(location, estimate_bytes(spec))
    return JobPlan(
        command="search",
        name=spec.name,
        experiment=location,
        args=["--name", spec.name, "--storage", storage]
        + (["--resume"] if resume else [])
        + [a for o in overrides for a in ("--set", o)],
        env={SPEC_ENV: spec.to_yaml()},
        local_paths=local_paths,
    )


def _refuse_existing(location: str) -> None:
    """Resubmitting a spec whose experiment exists would start a second search: say so here.

    Where this machine cannot read the storage (the credentials are the cluster's), the job
    itself refuses (`robprune search` there).
    """
    try:
        exists = Experiment(location).exists()
    except BadInput:
        return
    if exists:
        raise BadInput(
            f"experiment {redact_uri(location)} already exists: submit with --resume to "
            "continue it (or `robprune resume EXPERIMENT --submit`), or choose another --name"
        )


def plan_resume(args: Any) -> JobPlan:
    """The experiment must exist where this machine can see it (the same storage)."""
    if int(args.extend or 0) < 0:
        raise BadInput(f"--extend must be >= 0, got {args.extend}")
    location = args.experiment
    _check_uri_secrets("experiment", location)
    exp = Experiment.open(location)  # bad input if it is not an experiment
    local_paths = {} if exp.remote else {"experiment": exp.location}
    extra = ["--extend", str(int(args.extend))] if args.extend else []
    return JobPlan(
        command="resume",
        name=exp.name,
        experiment=exp.location,
        args=[exp.location, *extra],
        local_paths=local_paths,
    )


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"--env: expected KEY=VALUE, got {pair!r}")
        if looks_secret(key):
            raise BadInput(
                f"--env {key}: looks like a credential; Ray shows a job's environment to anyone "
                "who can reach its dashboard: set it on the cluster's nodes instead"
            )
        env[key] = value
    return env


def _runtime_env(args: Any, plan: JobPlan) -> dict[str, Any]:
    runtime_env: dict[str, Any] = {"env_vars": {**_parse_env(args.env or []), **plan.env}}
    if args.pip:
        runtime_env["pip"] = list(args.pip)
    if not args.installed:
        working_dir = Path(args.working_dir).expanduser()
        if not working_dir.is_dir():
            raise BadInput(f"--working-dir: {args.working_dir} is not a directory")
        runtime_env["working_dir"] = str(working_dir.resolve())
        runtime_env["excludes"] = working_dir_excludes()
    return runtime_env


def _entrypoint(args: Any, plan: JobPlan) -> str:
    python = shlex.quote(args.python)
    rest = " ".join(shlex.quote(a) for a in plan.args)
    return f"{python} -m cluster.job_entry {plan.command} {rest}"


def local_path_problem(local_paths: dict[str, str], nodes: int | None, shared: bool) -> str | None:
    """Why the spec's local paths cannot work on this cluster (None when they can)."""
    if not local_paths or shared or nodes is None or nodes <= 1:
        return None
    key, path = next(iter(local_paths.items()))
    return (
        f"{key}: {path} is a local path and the cluster has {nodes} nodes that cannot all "
        "see it: use s3://... (or gs://...), or pass --shared-paths if every node mounts it"
    )


def submit(args: Any, plan: JobPlan) -> tuple[str, str]:
    """Submit the planned job; returns (job id, dashboard address). Returns at once."""
    runtime_env = _runtime_env(args, plan)
    client = connect(args.address)
    shared = bool(getattr(args, "shared_paths", False))
    problem = local_path_problem(plan.local_paths, node_count(client), shared)
    if problem:
        raise BadInput(problem)
    job_id = f"robprune-{plan.name[:80]}-{secrets.token_hex(3)}"

    call(
        client,
        job_id,
        "submit_job",
        entrypoint=_entrypoint(args, plan),
        submission_id=job_id,
        runtime_env=runtime_env,
        metadata=job_metadata(command=plan.command, experiment=plan.experiment, name=plan.name),
    )
    return job_id, client.get_address()


def describe(plan: JobPlan) -> str:
    return redact_uri(plan.experiment)
