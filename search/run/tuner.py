"""The Ray Tune side of one run of an experiment: a new `Tuner`, or one restored from storage.

Each run (the first search, then one per `--extend`) is its own Tune experiment under
EXPERIMENT/tune/RUN; optimize and random runs share one Optuna study through the journal.
Imports Ray at its top: the runner imports it only after `prepare_environment`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from search.run import tune_internals as internals
from search.run.checkpoint_keep import ForgetOlder
from search.run.dense_stage import cache_dir
from search.run.durable import JournalPush, sync_config
from search.run.end_marker import EndMarkerCallback
from search.run.fault_watch import FaultWatch
from search.run.grid_study import GridStudyCallback
from search.run.moved_classes import alias_moved_classes
from search.run.progress import ProgressCallback
from search.run.reconcile import reconcile_run
from search.run.status_callback import status_callback
from search.run.storage_fault import as_storage_fault
from search.run.study import make_sampler
from search.run.trainable import train_trial, trial_name
from search.run.tune_state import set_aside_snapshot
from search.spec.grid import grid_configs, space_size
from search.spec.model import Spec
from search.spec.space import SpaceFunction
from search.state import storage
from search.state.experiment import Experiment, Segment

__all__ = ["build_tuner", "restore_tuner", "restored_tuner"]


def _trainable(spec: Spec) -> Any:
    return tune.with_resources(train_trial, {"cpu": spec.cpu, "gpu": spec.gpu})


def _scheduler(spec: Spec) -> Any:
    settings = spec.search.scheduler
    if settings.name != "asha":
        return None
    max_t = spec.max_epochs()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=max_t,
        grace_period=min(settings.grace_period, max_t),
        reduction_factor=settings.reduction_factor,
    )


def _search_space(
    spec: Spec, exp: Experiment, segment: Segment, offset: int
) -> tuple[dict[str, Any], Any, int]:
    """(param_space, search algorithm, num_samples) of one run: a grid of configs, or the
    persisted Optuna study asked through a define-by-run space."""
    settings = spec.search
    cache = str(cache_dir(spec, exp))
    extra: dict[str, Any] = {}
    if exp.remote:  # trials fetch the dense models from the experiment's storage
        extra["dense_uri"] = storage.join(exp.location, "dense")
    if settings.mode == "grid":
        configs = grid_configs(spec, cache)
        key = f"{exp.study_name}/{segment.name}".encode()
        generator = internals.grid_generator(
            max_concurrent=settings.max_concurrent or 0,
            prefix=hashlib.sha1(key, usedforsecurity=False).hexdigest()[:5],
        )
        return {"trial": tune.grid_search(configs), **extra}, generator, 1
    multi = len(settings.objectives) > 1
    internals.StudySearch.journal_override = str(exp.journal_path)
    search_alg = internals.StudySearch(
        SpaceFunction(spec, cache, extra),
        metric=settings.metrics if multi else settings.primary.metric,
        mode=settings.modes if multi else settings.primary.mode,
        sampler=make_sampler(settings, offset=offset),
        study_name=exp.study_name,
        journal=exp.journal_path,
        run=segment.name,
        planned=int(segment.num_samples or settings.num_samples),
        dedupe=settings.dedupe,
        space_size=space_size(spec),
    )
    # the searcher ends the run when the journal accounts for every planned trial: Tune's own
    # count, restored from a snapshot that may be older than the journal, must not
    return {}, search_alg, -1


def _callbacks(spec: Spec, exp: Experiment, segment: Segment, stream: Any) -> list[Any]:
    """The run's Tune callbacks, writing where the experiment is now."""
    settings = spec.search
    grid = settings.mode == "grid"
    total = len(spec.grid) if grid else int(segment.num_samples or settings.num_samples or 0)
    # in this order when a trial ends: the journal (its ask and tell) reaches the storage
    # before the end marker does, so a marker never names a trial the stored journal lacks
    return [
        ProgressCallback(settings.metrics, total=total, stream=stream),
        *([GridStudyCallback(exp.location, segment.name, spec)] if grid else []),
        JournalPush(exp.location),
        EndMarkerCallback(exp.location, segment.name, settings.metrics),
        status_callback(spec, exp, segment, total),
        FaultWatch(),
        ForgetOlder(),
    ]


def _checkpoint_config() -> Any:
    # Tune keeps every checkpoint: its own pruning forces a whole snapshot about once per
    # trial; the trainable prunes its folder instead (search.run.checkpoint_keep)
    return tune.CheckpointConfig(num_to_keep=None)


def build_tuner(
    spec: Spec, exp: Experiment, segment: Segment, *, offset: int = 0, stream: Any = None
) -> Any:
    """A new Tuner for one run of the experiment (the first, or an --extend)."""
    settings = spec.search
    param_space, search_alg, num_samples = _search_space(spec, exp, segment, offset)
    grid = settings.mode == "grid"
    tune_config = tune.TuneConfig(
        search_alg=search_alg,
        scheduler=_scheduler(spec),
        num_samples=num_samples,
        # a grid's generator limits itself (Tune ignores this for a generator it is handed)
        max_concurrent_trials=None if grid else settings.max_concurrent,
        metric=settings.primary.metric,
        mode=settings.primary.mode,
        trial_name_creator=trial_name,
        trial_dirname_creator=trial_name,
        reuse_actors=True,
    )
    storage_path, storage_fs = storage.tune_storage(exp)
    run_config = tune.RunConfig(
        name=segment.name,
        storage_path=storage_path,
        storage_filesystem=storage_fs,
        checkpoint_config=_checkpoint_config(),
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        sync_config=sync_config(),
        callbacks=_callbacks(spec, exp, segment, stream),
        verbose=0,
    )
    return tune.Tuner(
        _trainable(spec), param_space=param_space, tune_config=tune_config, run_config=run_config
    )


def restore_tuner(
    spec: Spec, exp: Experiment, segment: Segment, *, stream: Any = None
) -> Any | None:
    """The run's Tuner as Tune saved it, or None when Tune saved nothing yet.

    Errored trials stay errored (a failure is a result); unfinished ones continue from their
    last checkpoint. `search.run.reconcile` has already brought Tune's snapshot in line with the
    durable record, so nothing finished is rerun. The callbacks and checkpoint settings are
    this robprune's, for where the experiment is now (Tune saved those of the run that made
    it, which may have been elsewhere or older).
    """
    internals.StudySearch.journal_override = str(exp.journal_path)
    path, fs = storage.tune_storage(exp, segment.name)
    if not tune.Tuner.can_restore(path, storage_filesystem=fs):
        return None
    alias_moved_classes()  # the snapshot may name classes where an earlier robprune had them
    with internals.restore_reads_no_results():  # fit() reads what it needs
        tuner = tune.Tuner.restore(
            path,
            trainable=_trainable(spec),
            resume_unfinished=True,
            resume_errored=False,
            restart_errored=False,
            storage_filesystem=fs,
        )
    internals.renew_run_config(
        tuner,
        callbacks=_callbacks(spec, exp, segment, stream),
        checkpoint_config=_checkpoint_config(),
    )
    return tuner


def restored_tuner(spec: Spec, exp: Experiment, segment: Segment, stream: Any) -> Any | None:
    """Tune's restore of the run, or None when it raises (its snapshot is then set aside and
    the run rebuilt from robprune's records: `search.run.continuation`)."""
    try:
        return restore_tuner(spec, exp, segment, stream=stream)
    except Exception as exc:  # noqa: BLE001 - whatever Tune's restore raises, the records hold
        if as_storage_fault(exc) is not None:
            raise
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        print(
            f"{segment.name}: Tune could not restore its snapshot ({type(exc).__name__}: "
            f"{first}); rebuilt from robprune's records",
            file=stream,
            flush=True,
        )
        path, fs = storage.tune_storage(exp, segment.name)
        set_aside_snapshot(fs or storage.LOCAL, path)
        print(reconcile_run(spec, exp, segment).describe(), file=stream, flush=True)
        return None
