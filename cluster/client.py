"""Talking to a Ray head through the Jobs API, with Ray's failures turned into one-line errors.

Every way a user can point at the wrong thing (nothing listening, the GCS port instead of the
dashboard's, a head that wants a token, a job id that does not exist or is not robprune's) is
a `BadInput` here, so the CLI prints one line and exits 2 instead of a Ray traceback.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import robprune
from cluster.redact import redact_uri
from robprune.errors import BadInput

__all__ = [
    "ROBPRUNE_KEY",
    "RobpruneJob",
    "connect",
    "get_robprune_job",
    "call",
    "job_metadata",
    "node_count",
    "resolve_address",
]

#: Job metadata key that marks a job as robprune's; its value is the robprune version.
ROBPRUNE_KEY = "robprune"
_ADDRESS_VARS = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")


def resolve_address(address: str | None) -> str:
    """--address, else $RAY_API_SERVER_ADDRESS, else $RAY_ADDRESS, as an http(s) URL.

    A bare HOST:PORT is taken as the dashboard's (the Jobs API lives there). Ray's own client
    lets the environment override an explicit address; here the command line wins.
    """
    chosen = address or next((os.environ[v] for v in _ADDRESS_VARS if os.environ.get(v)), None)
    if not chosen:
        raise BadInput(
            "no Ray cluster given: pass --address http://HEAD:8265 or set RAY_API_SERVER_ADDRESS"
        )
    chosen = chosen.strip().rstrip("/")
    if "://" not in chosen:
        chosen = f"http://{chosen}"
    parts = urlsplit(chosen)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(
            f"--address: expected the head's dashboard as http://HEAD:PORT, got {chosen!r}"
        )
    return chosen


def _probe(url: str) -> None:
    """Nothing listening is 'unreachable'; anything else that fails later is 'not a dashboard'."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=5).close()
    except OSError as exc:
        raise BadInput(
            f"cannot reach the Ray head at {url}: {exc.strerror or exc} "
            "(is the cluster up, and is this the dashboard's address?)"
        ) from None


def connect(address: str | None) -> Any:
    """A `JobSubmissionClient` for the head, or a one-line `BadInput` saying why not."""
    url = resolve_address(address)
    _probe(url)
    ray_api = _ray_api()
    # Ray's clients (jobs, state API) let these variables override any address they are given
    os.environ["RAY_API_SERVER_ADDRESS"] = url
    try:
        return ray_api.JobSubmissionClient(url)
    except ray_api.AuthenticationError as exc:
        raise BadInput(_auth_message(url, str(exc))) from None
    except (ConnectionError, RuntimeError) as exc:
        port = urlsplit(url).port
        hint = " (that is Ray's GCS port)" if port == 6379 else ""
        raise BadInput(
            f"{url} answers but is not a Ray dashboard's Jobs API{hint}: use the dashboard's "
            f"address, http://HEAD:8265 by default ({_first_line(exc)})"
        ) from None


def _ray_api() -> ModuleType:
    """Ray's Jobs and State APIs, imported when a command first talks to a head."""
    import cluster.ray_api

    return cluster.ray_api


def _auth_message(url: str, detail: str) -> str:
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled" or "Missing" in detail:
        return (
            f"the Ray head at {url} requires an authentication token and none was sent: "
            "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) as for the "
            "cluster"
        )
    if "couldn't find" in detail or "no authentication token" in detail:
        return (
            f"RAY_AUTH_MODE=token but no token is set for {url}: set RAY_AUTH_TOKEN or "
            "RAY_AUTH_TOKEN_PATH (or create ~/.ray/auth_token)"
        )
    return f"the Ray head at {url} rejected the authentication token (wrong token for it?)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def call(client: Any, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """A client method, with 'no such job' and transport failures as one-line errors."""
    try:
        return _retrying(getattr(client, method), *args, **kwargs)
    except _ray_api().AuthenticationError as exc:
        raise BadInput(_auth_message(client.get_address(), str(exc))) from None
    except RuntimeError as exc:
        text = str(exc)
        if "status code 404" in text or "does not exist" in text:
            raise BadInput(
                f"no job {what!r} on {client.get_address()} (see `robprune jobs`)"
            ) from None
        raise BadInput(f"{what}: the Ray head refused: {_first_line(exc)}") from None
    except (ValueError, TypeError) as exc:  # e.g. a runtime environment Ray will not take
        raise BadInput(f"{what}: {_first_line(exc)}") from None
    except OSError as exc:
        where = client.get_address()
        raise BadInput(f"lost the Ray head at {where}: {_first_line(exc)}") from None


def _retrying(func: Any, *args: Any, wait_s: float = 60.0, **kwargs: Any) -> Any:
    """A freshly started head answers 'No available agent' until its job agent is up."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return func(*args, **kwargs)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)


@dataclass(frozen=True, kw_only=True)
class RobpruneJob:
    """A job robprune submitted: Ray's details plus what robprune stored in its metadata."""

    job_id: str
    status: str
    message: str
    experiment: str
    command: str
    start_time: int | None
    end_time: int | None

    @classmethod
    def from_details(cls, details: Any) -> RobpruneJob:
        meta = details.metadata or {}
        return cls(
            job_id=details.submission_id or details.job_id or "?",
            status=str(getattr(details.status, "value", details.status)),
            message=details.message or "",
            experiment=meta.get("robprune_experiment", ""),
            command=meta.get("robprune_command", ""),
            start_time=details.start_time,
            end_time=details.end_time,
        )


def is_robprune(details: Any) -> bool:
    return ROBPRUNE_KEY in (details.metadata or {})


def get_robprune_job(client: Any, job_id: str) -> RobpruneJob:
    """The job's details; a job without robprune's metadata is refused (bad input)."""
    details = call(client, job_id, "get_job_info", job_id)
    if not is_robprune(details):
        raise BadInput(
            f"job {job_id!r} was not submitted by robprune (no {ROBPRUNE_KEY!r} metadata): "
            f"use `ray job status {job_id}`"
        )
    return RobpruneJob.from_details(details)


def job_metadata(*, command: str, experiment: str, name: str) -> dict[str, str]:
    """What marks a job as robprune's and tells `status` where its experiment lives."""
    return {
        ROBPRUNE_KEY: robprune.__version__,
        "robprune_command": command,
        "robprune_experiment": redact_uri(experiment),
        "robprune_name": name,
    }


def node_count(client: Any) -> int | None:
    """Alive nodes in the cluster (None when the head will not say)."""
    try:
        nodes = _ray_api().list_nodes(
            address=client.get_address(),
            filters=[("state", "=", "ALIVE")],
            raise_on_missing_output=False,
        )
    except Exception:  # noqa: BLE001 - an unknown size only skips the local-path check
        return None
    return len(nodes)
