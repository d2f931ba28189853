"""Attaching to Ray: environment defaults, `connect`, and the `ray_session()` context manager.

A search either joins a cluster (`--address`, or $RAY_ADDRESS inside a Ray job) or starts a
local Ray on loopback that it alone owns and shuts down when it ends.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from robprune.errors import BadInput
from search.finalists.rules import planned_trials
from search.run.ownership import await_session_end
from search.spec.model import Spec
from search.spec.settings import FINAL_METRICS

__all__ = [
    "DEFAULT_ENV",
    "LOCAL_ENV",
    "prepare_environment",
    "snapshot_period_s",
    "set_snapshot_period",
    "configure_driver",
    "connect",
    "ray_session",
    "quiet",
]

#: Driver environment defaults: no usage reporting; Tune's experiment snapshot period is set
#: per run (`set_snapshot_period`).
DEFAULT_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # a run saved before trials pruned their own checkpoints still forces snapshots: no warning
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    # Tune's newer output engine prints its configuration box and a TensorBoard command into
    # Ray's temp dir even at verbose=0 (ray/tune/experimental/output.py, Ray 2.60); the legacy
    # engine at verbose=0 prints nothing: robprune's progress lines and TensorBoard command stay
    "RAY_AIR_NEW_OUTPUT": "0",
}
#: Local Ray listens on loopback only, with Ray's token authentication said explicitly (Ray
#: turns it on when unset, with a warning; the token lives in ~/.ray/auth_token, made once).
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "token"}


def is_local(address: str | None) -> bool:
    """Whether a search with this --address starts its own Ray (no cluster given)."""
    return (address or os.environ.get("RAY_ADDRESS")) is None


def prepare_environment(local: bool) -> None:
    """Environment defaults for Ray; they only take effect before `ray` is first imported."""
    for key, value in DEFAULT_ENV.items():
        os.environ.setdefault(key, value)
    if local:
        for key, value in LOCAL_ENV.items():
            os.environ.setdefault(key, value)


SNAPSHOT_ENV = "TUNE_GLOBAL_CHECKPOINT_S"
#: Tune's experiment snapshot holds every trial and is rewritten whole each period: a period
#: that grows with the planned trials keeps the bytes written linear in trials. A snapshot
#: staler than that loses little: a restarted trial continues from its newest checkpoint on
#: storage and reconciliation (`search/run/reconcile.py`) decides from the durable record.
SNAPSHOT_MIN_S = 2.0
SNAPSHOT_S_PER_TRIAL = 0.05
_period_set: str | None = None  # the value this module set, told apart from the user's


def snapshot_period_s(trials: int) -> float:
    """Seconds between Tune's experiment snapshots for a run of `trials` trials."""
    return max(SNAPSHOT_MIN_S, SNAPSHOT_S_PER_TRIAL * max(0, trials))


def set_snapshot_period(trials: int) -> None:
    """Set Tune's snapshot period for the next run, unless the user set it (Tune reads it
    when the run starts)."""
    global _period_set
    if os.environ.get(SNAPSHOT_ENV) not in (None, _period_set):
        return
    _period_set = f"{snapshot_period_s(trials):g}"
    os.environ[SNAPSHOT_ENV] = _period_set


def configure_driver(spec: Spec) -> None:
    """Driver-side Tune settings that depend on the spec (before the Tuner is built)."""
    set_snapshot_period(planned_trials(spec))
    if any(o.metric in FINAL_METRICS for o in spec.search.objectives):
        # secondary objectives known only at the end are absent from per-epoch reports
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"


def quiet() -> None:
    """Optuna's and Tune's per-trial INFO lines drown the progress lines."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)


def connect(address: str | None, num_cpus: int | None = None, temp_dir: str | None = None) -> bool:
    """Attach to Ray: an existing cluster (`address`, or $RAY_ADDRESS as a Ray job has), or
    a new local instance on loopback.

    Returns whether this call started Ray (and so should shut it down). A session that is
    already initialised (tests, notebooks) is used as it is. Worker output stays in Ray's
    session logs: the progress lines say what happens, without trials' interleaved chatter.
    A local Ray keeps its sessions under `temp_dir` (default: Ray's), so that every process
    it starts names that directory on its command line (`search.run.ownership`).
    """
    address = address or os.environ.get("RAY_ADDRESS") or None  # set inside a Ray job
    prepare_environment(local=address is None)
    import ray

    if ray.is_initialized():
        return False
    if address is None:
        # "local" always starts a fresh instance, never joins a cluster found on this machine
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,
            _temp_dir=temp_dir,
        )
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as exc:
            raise BadInput(
                f"cannot connect to Ray at {address}: {exc} (is the cluster up, "
                "and RAY_AUTH_MODE the same as for `ray start`?)"
            ) from None
    return True


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable GCS for minutes; a refused HOST:PORT is bad input now."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # auto, ray://, or something Ray itself will judge
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise BadInput(f"cannot connect to Ray at {address}: {exc.strerror or exc}") from None


@contextmanager
def ray_session(address: str | None = None, temp_dir: str | None = None) -> Iterator[bool]:
    """Connected Ray for the body; shut down afterwards if this call started it.

    Yields whether this session started Ray (a local instance it owns).
    """
    started = connect(address, temp_dir=temp_dir)
    quiet()
    try:
        yield started
    finally:
        if started:
            import ray

            ray.shutdown()
            if temp_dir:  # its own directory: every process of it is this driver's
                await_session_end(temp_dir)
