"""Runs a search: Ray, the dense stage, the Tuner (new, restored or extended), the export.

`run_search` starts an experiment, `resume_experiment` restores its unfinished Tune run and
optionally extends the same Optuna study by N trials (a new Tune run in the same experiment,
whose sampler sees every earlier trial through the shared journal).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robprune.errors import BadInput
from search.experiment import Experiment, Segment, parent
from search.spec import FINAL_METRICS, Spec, parse_spec

__all__ = [
    "RunOutcome",
    "connect",
    "prepare_environment",
    "run_search",
    "resume_experiment",
    "build_tuner",
    "run_dense_stage",
    "DEFAULT_ENV",
]

#: Driver environment defaults: no usage reporting; experiment snapshots every 2 s so that a
#: killed driver's running trials resume from their last epoch (ENVIRONMENT.md).
DEFAULT_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "TUNE_GLOBAL_CHECKPOINT_S": "2",
    # checkpoints every epoch force snapshots by design: not worth a warning
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}
#: Local Ray listens on loopback only.
LOCAL_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


@dataclass
class RunOutcome:
    """How a search ended: for the exit code and the summary."""

    experiment: Experiment
    completed: int
    failed: int
    unfinished: int
    interrupted: bool
    results_dir: str

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if self.failed or self.unfinished else 0


def _quiet() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    logging.getLogger("ray.train").setLevel(logging.WARNING)


def prepare_environment(local: bool) -> None:
    """Environment defaults for Ray; they only take effect before `ray` is first imported."""
    for key, value in DEFAULT_ENV.items():
        os.environ.setdefault(key, value)
    if local:
        for key, value in LOCAL_ENV.items():
            os.environ.setdefault(key, value)


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Attach to Ray: an existing cluster (`address`, or $RAY_ADDRESS as a Ray job has), or
    a new local instance on loopback.

    Returns whether this call started Ray (and so should shut it down). A session that is
    already initialised (tests, notebooks) is used as it is. Worker output stays in Ray's
    session logs: the progress lines say what happens, without trials' interleaved chatter.
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
    import socket

    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # auto, ray://, or something Ray itself will judge
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise BadInput(f"cannot connect to Ray at {address}: {exc.strerror or exc}") from None


def _shutdown() -> None:
    import ray

    ray.shutdown()


# ------------------------------------------------------------------------------ dense stage


def _dense_task(config: dict[str, Any], upload_to: str | None) -> str:
    """Train (or find) one dense model exactly as `run_trial` would, in a Ray task."""
    import ray
    import torch

    from robprune.config import parse_trial_config
    from robprune.dense import ensure_dense_for

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    dense = ensure_dense_for(parse_trial_config(config), log=lambda m: print(m))
    if upload_to:
        import pyarrow.fs as pafs

        fs, path = pafs.FileSystem.from_uri(upload_to)
        pafs.copy_files(
            str(dense.directory),
            f"{path}/dense/{dense.directory.name}",
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=fs,
        )
    return str(dense.meta["key"])


def run_dense_stage(spec: Spec, exp: Experiment, stream: Any = None) -> list[str]:
    """Train every dense model the search can use, once, before any trial starts.

    Trials then find them in the shared cache (EXPERIMENT/dense) and never retrain. A dense
    model that fails to train is reported; the trials that need it fail with the reason.
    """
    import ray

    from search.space import dense_configs

    stream = stream or sys.stdout
    configs = dense_configs(spec, str(_cache_dir(spec, exp)))
    upload = exp.path("dense") if exp.remote else None
    task = ray.remote(_dense_task).options(num_cpus=spec.cpu, num_gpus=spec.gpu, max_retries=0)
    print(
        f"dense stage: {len(configs)} dense model(s) under {exp.path('dense')}",
        file=stream,
        flush=True,
    )
    start = time.perf_counter()
    refs = [task.remote(cfg, upload) for cfg in configs]
    keys = []
    for ref, cfg in zip(refs, configs, strict=True):
        try:
            keys.append(ray.get(ref))
        except Exception as exc:  # noqa: BLE001 - reported; the trials fail with the reason
            cause = getattr(exc, "cause", None) or exc
            print(
                f"dense stage: {cfg.get('model', {}).get('arch', '?')} failed: "
                f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}",
                file=stream,
                flush=True,
            )
    print(
        f"dense stage: {len(keys)} of {len(configs)} ready after "
        f"{time.perf_counter() - start:.0f} s",
        file=stream,
        flush=True,
    )
    return keys


def _cache_dir(spec: Spec, exp: Experiment) -> Path | str:
    if "cache_dir" in spec.template:
        return spec.template["cache_dir"]
    if exp.remote:
        return str(exp.dense_dir).replace(str(Path.home()), "~", 1)
    return exp.dense_dir


# ------------------------------------------------------------------------------ the Tuner


def _trainable(spec: Spec) -> Any:
    from ray import tune

    from search.trainable import train_trial

    return tune.with_resources(train_trial, {"cpu": spec.cpu, "gpu": spec.gpu})


def _scheduler(spec: Spec) -> Any:
    if spec.search.scheduler != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    max_t = spec.max_epochs()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_t,
        grace_period=min(spec.search.grace_period, max_t),
        reduction_factor=spec.search.reduction_factor,
    )


def build_tuner(
    spec: Spec, exp: Experiment, segment: Segment, *, offset: int = 0, stream: Any = None
) -> Any:
    """A new Tuner for one run of the experiment (the first, or an --extend)."""
    from ray import tune

    from search.progress import ProgressCallback
    from search.searcher import StudySearch, make_sampler
    from search.space import SpaceFunction, grid_configs
    from search.status_file import status_callback
    from search.trainable import trial_name

    settings = spec.search
    cache_dir = str(_cache_dir(spec, exp))
    extra: dict[str, Any] = {"dense_uri": exp.path("dense")} if exp.remote else {}
    if settings.mode == "grid":
        configs = grid_configs(spec, cache_dir)
        param_space: dict[str, Any] = {"trial": tune.grid_search(configs), **extra}
        search_alg, num_samples, total = None, 1, len(configs)
    else:
        multi = len(settings.objectives) > 1
        StudySearch.journal_override = str(exp.journal_path)
        search_alg = StudySearch(
            SpaceFunction(spec, cache_dir, extra),
            metric=settings.metrics if multi else settings.primary.metric,
            mode=settings.modes if multi else settings.primary.mode,
            sampler=make_sampler(settings, offset=offset),
            study_name=exp.study_name,
            journal=exp.journal_path,
        )
        param_space, num_samples = {}, int(segment.num_samples or settings.num_samples)
        total = num_samples
    tune_config = tune.TuneConfig(
        search_alg=search_alg,
        scheduler=_scheduler(spec),
        num_samples=num_samples,
        max_concurrent_trials=settings.max_concurrent,
        metric=settings.primary.metric,
        mode=settings.primary.mode,
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_name,
        reuse_actors=True,
    )
    storage_path, storage_fs = exp.tune_storage()
    run_config = tune.RunConfig(
        name=segment.name,
        storage_path=storage_path,
        storage_filesystem=storage_fs,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        callbacks=[
            ProgressCallback(settings.metrics, total=total, stream=stream),
            status_callback(spec, exp, segment, total),
        ],
        verbose=0,
    )
    return tune.Tuner(
        _trainable(spec), param_space=param_space, tune_config=tune_config, run_config=run_config
    )


def _restore_tuner(spec: Spec, exp: Experiment, segment: Segment) -> Any:
    from ray import tune

    from search.searcher import StudySearch

    StudySearch.journal_override = str(exp.journal_path)
    path, fs = exp.tune_storage(segment.name)
    if not tune.Tuner.can_restore(path, storage_filesystem=fs):
        return None
    return tune.Tuner.restore(
        path,
        trainable=_trainable(spec),
        resume_unfinished=True,
        resume_errored=True,
        restart_errored=False,
        storage_filesystem=fs,
    )


def _configure_driver(spec: Spec) -> None:
    if any(o.metric in FINAL_METRICS for o in spec.search.objectives):
        # secondary objectives known only at the end are absent from per-epoch reports
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"


def _fit(tuner: Any, exp: Experiment, segment: Segment) -> None:
    tuner.fit()
    exp.push("optuna")


def _finish(spec: Spec, exp: Experiment, segment: Segment, stream: Any) -> RunOutcome:
    """Export, close stale Optuna trials when all is done, print the summary."""
    from search.export import export_experiment
    from search.progress import summary_table
    from search.searcher import finalize_study

    result = export_experiment(exp)
    unfinished = sum(1 for r in result.trials if r["status"] not in ("TERMINATED", "ERROR"))
    interrupted = unfinished > 0
    exp.set_segment_status(segment.name, "interrupted" if interrupted else "finished")
    if not interrupted and spec.search.mode != "grid" and exp.journal_path.exists():
        finalize_study(exp.journal_path, exp.study_name)
        exp.push("optuna")
    completed, failed = result.count("TERMINATED"), result.count("ERROR")
    varying = _varying_columns(result.trials)
    objectives = [
        (o.metric, o.mode) for o in spec.search.objectives if o.metric not in ("train_loss",)
    ] or [("robust_acc", "max")]
    print("", file=stream)
    print(
        f"{exp.name}: {completed} completed, {failed} failed, {unfinished} unfinished "
        f"(of {len(result.trials)})",
        file=stream,
    )
    print("best trials (ranked on validation, test-split accuracies shown):", file=stream)
    print(summary_table(result.trials, objectives, varying), file=stream)
    for row in result.trials:
        if row["status"] == "ERROR":
            print(f"failed {row['trial_id']}: {row['error']}", file=stream)
    print(f"results: {result.results_dir}/{{trials,epochs,layers}}.parquet", file=stream)
    print(f"tensorboard: tensorboard --logdir {result.results_dir}/tensorboard", file=stream)
    if spec.search.mode != "grid":
        print(f"optuna: optuna-dashboard {exp.journal_path}", file=stream)
    if interrupted:
        print(f"interrupted: continue with `robprune resume {exp.location}`", file=stream)
    stream.flush()
    return RunOutcome(exp, completed, failed, unfinished, interrupted, result.results_dir)


def _varying_columns(rows: list[dict[str, Any]]) -> list[str]:
    from search.tensorboard import HPARAM_COLUMNS

    return [c for c in HPARAM_COLUMNS if len({r.get(c) for r in rows}) > 1]


# ------------------------------------------------------------------------------ entry points


def run_search(
    spec: Spec, *, address: str | None = None, num_cpus: int | None = None, stream: Any = None
) -> RunOutcome:
    """A new experiment from a validated spec: create it, train dense models, search."""
    prepare_environment(local=(address or os.environ.get("RAY_ADDRESS")) is None)
    stream = stream or sys.stdout
    Experiment.check_new(spec.storage, spec.name)
    _configure_driver(spec)
    started = connect(address, num_cpus=num_cpus)  # before the directory: a bad address
    _quiet()
    try:
        exp = Experiment.create(
            spec.storage, spec.name, mode=spec.search.mode, spec_yaml=spec.to_yaml()
        )
        print(f"experiment: {exp.location}", file=stream, flush=True)
        segment = exp.add_segment(None if spec.search.mode == "grid" else spec.search.num_samples)
        run_dense_stage(spec, exp, stream)
        exp.push("dense")
        tuner = build_tuner(spec, exp, segment, stream=stream)
        _fit(tuner, exp, segment)
        return _finish(spec, exp, segment, stream)
    finally:
        if started:
            _shutdown()


def load_experiment_spec(exp: Experiment) -> Spec:
    from robprune.spec_yaml import load_yaml_text

    raw = load_yaml_text(exp.read_spec_yaml(), source=f"{exp.location}/spec.yaml")
    return parse_spec(raw, name=exp.name, storage=parent(exp.location))


def resume_experiment(
    location: str,
    *,
    extend: int = 0,
    address: str | None = None,
    num_cpus: int | None = None,
    stream: Any = None,
) -> RunOutcome:
    """Finish what was interrupted (completed trials are not rerun), then add `extend` trials."""
    prepare_environment(local=(address or os.environ.get("RAY_ADDRESS")) is None)
    stream = stream or sys.stdout
    if extend < 0:
        raise BadInput("--extend must be >= 0")
    exp = Experiment.open(location)
    spec = load_experiment_spec(exp)
    if extend and spec.search.mode == "grid":
        raise BadInput(
            "--extend adds trials to an Optuna study; this experiment is a grid "
            "(run a new search with more seeds instead)"
        )
    unfinished = [s for s in exp.segments if s.status != "finished"]
    print(f"experiment: {exp.location}", file=stream, flush=True)
    _configure_driver(spec)
    exp.pull("optuna")
    started = connect(address, num_cpus=num_cpus)
    _quiet()
    try:
        run_dense_stage(spec, exp, stream)
        exp.push("dense")
        outcome = None
        for segment in unfinished:
            tuner = _restore_tuner(spec, exp, segment)
            if tuner is None:  # killed before Tune saved anything: start that run afresh
                tuner = build_tuner(spec, exp, segment, offset=_index(exp, segment), stream=stream)
            print(f"resuming {segment.name}", file=stream, flush=True)
            exp.set_segment_status(segment.name, "running")
            _fit(tuner, exp, segment)
            outcome = _finish(spec, exp, segment, stream)
            if outcome.interrupted:
                return outcome
        if extend:
            segment = exp.add_segment(extend)
            print(
                f"extending the study by {extend} trials ({segment.name})", file=stream, flush=True
            )
            tuner = build_tuner(spec, exp, segment, offset=_index(exp, segment), stream=stream)
            _fit(tuner, exp, segment)
            outcome = _finish(spec, exp, segment, stream)
        if outcome is None:
            print("nothing to resume: every run of the experiment finished", file=stream)
            last = exp.segments[-1] if exp.segments else None
            if last is None:
                raise BadInput(f"{exp.location}: the experiment has no runs")
            outcome = _finish(spec, exp, last, stream)
        return outcome
    finally:
        if started:
            _shutdown()


def _index(exp: Experiment, segment: Segment) -> int:
    return [s.name for s in exp.segments].index(segment.name)
