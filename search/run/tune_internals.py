"""Every private member of Ray Tune and Optuna that robprune touches, in one module.

Tested with ray 2.60.0 and optuna 5.0.0 (the versions pyproject.toml pins). A Ray or Optuna
that renamed one of these members fails at construction (`StudySearch(...)`,
`reconcile_run`) with one line naming the member and these versions, not deep inside a run.

What needs them and why:

- `StudySearch` subclasses Ray's `OptunaSearch` (its `_ot_trials`, `_ot_study`, `_storage`,
  `_study_name`, `_sampler`, `_completed_trials`) so that the study lives in the experiment's
  journal and survives moving: the study and its open trials are pickled by name and id, and
  reopened where the journal is now.
- Optuna's `Trial(study, frozen._trial_id)` opens a trial that another process asked, to set
  a user attribute on it (`fail_trial`, `tell_trial`).
- The reconciliation before a resume (search.run.reconcile) edits Tune's experiment snapshot:
  `Trial.from_json_state`/`get_json_state`, the trial's `run_metadata`, its checkpoint manager
  (`_checkpoint_results`, `_latest_checkpoint_result`), `StorageContext._update_checkpoint_index`
  and `ray.train._internal.session._TrainingResult`. The one exception, checked here too:
  `search.run.checkpoint_keep` cuts each trial's `_checkpoint_results` to the ones kept.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from search.run.continuation import orphans, relink
from search.run.storage_fault import faulted
from search.run.study import (
    FAIL_REASON_ATTR,
    RUN_ATTR,
    TUNE_TRIAL_ATTR,
    configurations_tried,
    open_storage,
    run_accounting,
)
from search.state.repeats import CONFIG_KEY_ATTR, REPEAT_ATTR, REPEAT_KEY, Originals, config_key

__all__ = [
    "TESTED_WITH",
    "InternalsMissing",
    "check_tune_internals",
    "StudySearch",
    "fail_trial",
    "tell_trial",
    "finalize_study",
    "snapshot_trial",
    "snapshot_entry",
    "register_checkpoint",
    "record_error_files",
]

#: The versions these members were read from and tested with.
TESTED_WITH = {"ray": "2.60.0", "optuna": "5.0.0"}

_SEARCH_MEMBERS = ("_ot_trials", "_ot_study", "_storage", "_study_name", "_sampler")
_SEARCH_MEMBERS += ("_completed_trials",)
_TRIAL_METHODS = ("from_json_state", "restore_run_metadata", "get_json_state")
_TRIAL_METHODS += ("invalidate_json_state", "set_status")
_METADATA_MEMBERS = ("checkpoint_manager", "last_result", "invalidate_cache")
_METADATA_MEMBERS += ("error_filename", "pickled_error_filename")
_MANAGER_MEMBERS = ("_checkpoint_results", "_latest_checkpoint_result")


class InternalsMissing(RuntimeError):
    """A Ray or Optuna member robprune relies on is gone (another version than tested)."""


def _require(obj: Any, owner: str, names: tuple[str, ...]) -> None:
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        import ray

        raise InternalsMissing(
            f"{owner}.{missing[0]} is missing: robprune relies on this private member, tested "
            f"with ray {TESTED_WITH['ray']} and optuna {TESTED_WITH['optuna']} (installed: ray "
            f"{ray.__version__}, optuna {optuna.__version__}); install the tested versions"
        )


def check_tune_internals() -> None:
    """Raise InternalsMissing (one line) unless every Tune/Optuna member used here exists."""
    from ray.train import CheckpointConfig
    from ray.train._internal import session
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment.trial import Trial, _TrainingRunMetadata

    _require(session, "ray.train._internal.session", ("_TrainingResult",))
    _require(StorageContext, "ray.train StorageContext", ("_update_checkpoint_index",))
    _require(Trial, "ray.tune Trial", _TRIAL_METHODS)
    _require(_TrainingRunMetadata(), "ray.tune Trial.run_metadata", _METADATA_MEMBERS)
    manager = _CheckpointManager(checkpoint_config=CheckpointConfig())
    _require(manager, "ray.train _CheckpointManager", _MANAGER_MEMBERS)
    frozen = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL)
    _require(frozen, "optuna FrozenTrial", ("_trial_id",))


# ------------------------------------------------------------------------------ the searcher


class StudySearch(OptunaSearch):
    """OptunaSearch on a persisted study; the journal path is re-resolved on restore.

    The journal, not Tune's saved search state, decides how many trials a run still hands out
    (`planned`) and how many run at once (`set_max_concurrency`): Tune's snapshot may be
    seconds older than the journal, and a trial that reconciliation finished never reports to
    Tune's own concurrency limiter again, which then waited for it forever.
    """

    #: Set by the runner before `Tuner.restore` to where the journal is now.
    journal_override: ClassVar[str | None] = None

    def __init__(
        self,
        space: Any,
        *,
        metric: str | list[str],
        mode: str | list[str],
        sampler: optuna.samplers.BaseSampler,
        study_name: str,
        journal: str | Path,
        run: str = "",
        planned: int | None = None,
        dedupe: bool = True,
        space_size: int | None = None,
    ):
        self._journal = str(journal)
        self._run = run
        self._planned = planned
        self._max_concurrent = 0
        self._dedupe = dedupe
        self._space_size = space_size
        self._originals: Originals | None = None
        self._said_exhausted = False
        super().__init__(
            space=space,
            metric=metric,
            mode=mode,
            sampler=sampler,
            study_name=study_name,
            storage=open_storage(journal),
        )
        _require(self, "ray.tune OptunaSearch", _SEARCH_MEMBERS)
        check_tune_internals()

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Limit concurrency here, from the journal (Tune's limiter then passes through)."""
        self._max_concurrent = int(max_concurrent or 0)
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """Ask Optuna, and record in the journal which Tune trial the Optuna trial is: the
        durable link that `search.run.reconcile` reads after a crash. FINISHED once the run's
        planned trials are all accounted for (or, with dedupe, the space is exhausted); None
        while `max_concurrent` trials run. A repeated configuration is marked `repeat_of`."""
        extra: dict[str, Any] = {}
        if trial_id not in self._ot_trials and (
            left := orphans(self._ot_study, self._run, {*self._ot_trials})
        ):
            # a run rebuilt from the records: its unfinished trials first, where they stopped
            self._ot_trials[trial_id] = optuna.trial.Trial(self._ot_study, left[0]._trial_id)
            extra = relink(self._ot_trials[trial_id], left[0], trial_id)
            self._originals = None  # read again: an original may have changed its Tune id
        if trial_id not in self._ot_trials:
            trials = self._ot_study.get_trials(deepcopy=False)
            accounted, live = run_accounting(trials, self._run)
            if self._planned is not None and accounted >= self._planned:
                return Searcher.FINISHED
            if self._exhausted(trials):
                return Searcher.FINISHED
            if self._max_concurrent and live >= self._max_concurrent:
                return None
        config = super().suggest(trial_id)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or config is None:
            return config
        config = {**config, **extra}
        attrs = ot_trial.user_attrs
        if TUNE_TRIAL_ATTR not in attrs:
            ot_trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
            ot_trial.set_user_attr(RUN_ATTR, self._run)
        return self._mark_repeat(trial_id, ot_trial, attrs, config)

    def _known(self) -> Originals:
        if self._originals is None:
            self._originals = Originals()
            self._originals.load(self._ot_study, trial_attr=TUNE_TRIAL_ATTR, run_attr=RUN_ATTR)
        return self._originals

    def _mark_repeat(
        self, trial_id: str, ot_trial: Any, attrs: dict[str, Any], config: dict[str, Any]
    ) -> dict[str, Any]:
        if "trial" not in config:  # not robprune's space (no trial config): nothing to compare
            return config
        key = attrs.get(CONFIG_KEY_ATTR) or config_key(config["trial"])
        if CONFIG_KEY_ATTR not in attrs:
            ot_trial.set_user_attr(CONFIG_KEY_ATTR, key)
        if not self._dedupe:
            return config
        original = self._known().claim(key, trial_id, self._run)
        if original is None:
            return config
        if REPEAT_ATTR not in attrs:
            ot_trial.set_user_attr(REPEAT_ATTR, original[0])
        return {**config, REPEAT_KEY: {"trial_id": original[0], "run": original[1]}}

    def _exhausted(self, trials: list[Any]) -> bool:
        """Every configuration of a finite space was tried (dedupe on): say so, stop."""
        if not self._dedupe or self._space_size is None:
            return False
        if configurations_tried(trials) < self._space_size:
            return False
        if not self._said_exhausted:
            self._said_exhausted = True
            print(
                f"all {self._space_size} configurations of the space were tried; stopping "
                "early (search.dedupe)",
                flush=True,
            )
        return True

    def _open_trial(self, trial_id: str) -> optuna.trial.Trial | None:
        """The Optuna trial of a Tune trial if it may still be updated, else None.

        A finished Optuna trial (told by a run that was killed before Tune saved its state)
        is never reported to again: the journal, not Tune's snapshot, is the record.
        """
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return None
        state = self._storage.get_trial(ot_trial._trial_id).state
        if state.is_finished():
            self._completed_trials.add(trial_id)
            return None
        return ot_trial

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if self._open_trial(trial_id) is not None:
            super().on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if error and faulted():  # the storage failed, not the trial: no FAIL in Optuna
            return
        if self._open_trial(trial_id) is not None:
            super().on_trial_complete(trial_id, result, error)
        if self._originals is None or ot_trial is None:
            return
        if error:  # no answer for later repeats: the next trial of its configuration trains
            self._originals.forget(trial_id)
        elif key := ot_trial.user_attrs.get(CONFIG_KEY_ATTR):
            # a repeat whose original had failed trained itself: it answers the next ones
            self._originals.adopt(key, trial_id, self._run)

    # pickled into tuner.pkl (by Tune) and the searcher state (by save): no open storage
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_storage"] = None
        state["_ot_study"] = None
        state["_ot_trials"] = {tid: t._trial_id for tid, t in self._ot_trials.items()}
        state["_originals"] = None  # read again from the journal, the record
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_run", "")
        self.__dict__.setdefault("_planned", None)
        self.__dict__.setdefault("_max_concurrent", 0)
        self.__dict__.setdefault("_dedupe", True)
        self.__dict__.setdefault("_space_size", None)
        self.__dict__.setdefault("_said_exhausted", False)
        self._originals = None
        journal = StudySearch.journal_override or self._journal
        self._journal = journal
        self._storage = open_storage(journal)
        self._ot_study = optuna.load_study(
            study_name=self._study_name,
            storage=self._storage,
            sampler=self._sampler,
            pruner=optuna.pruners.NopPruner(),
        )
        # an ask the stored journal never received (a head lost before its upload) is gone
        recorded = {t._trial_id for t in self._ot_study.get_trials(deepcopy=False)}
        self._ot_trials = {
            tid: optuna.trial.Trial(self._ot_study, ot_id)
            for tid, ot_id in state["_ot_trials"].items()
            if ot_id in recorded
        }
        # the journal is the record: a trial asked after this state was saved is linked too
        running = (optuna.trial.TrialState.RUNNING,)
        for frozen in self._ot_study.get_trials(deepcopy=False, states=running):
            tid = frozen.user_attrs.get(TUNE_TRIAL_ATTR)
            if not tid or frozen.user_attrs.get(RUN_ATTR) != self._run:
                continue
            if tid not in self._ot_trials:
                self._ot_trials[tid] = optuna.trial.Trial(self._ot_study, frozen._trial_id)
            self._completed_trials.discard(tid)  # its tell never reached the journal: tell it

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__getstate__(), handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.__setstate__(pickle.load(handle))


# ------------------------------------------------------------------------------ the study


def tell_trial(study: Any, frozen: Any, values: list[float] | None, why: str) -> None:
    """Finish an Optuna trial asked elsewhere: COMPLETE with `values`, or FAIL (values None)
    with `why` in its `fail_reason` user attribute (else in `reconciled`)."""
    attr = FAIL_REASON_ATTR if values is None else "reconciled"
    optuna.trial.Trial(study, frozen._trial_id).set_user_attr(attr, why)
    if values is None:
        study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
    else:
        study.tell(frozen.number, values if len(values) > 1 else values[0])


def fail_trial(study: Any, frozen: Any, why: str) -> None:
    """FAIL a stale Optuna trial (one no Tune trial will finish), saying why."""
    tell_trial(study, frozen, None, why)


def finalize_study(journal: str | Path, study_name: str) -> int:
    """Close Optuna trials that no Tune trial will ever finish (asked just before a crash).

    Called when no search is running. Returns how many were marked FAIL.
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(journal))
    except KeyError:
        return 0
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for frozen in stale:
        fail_trial(study, frozen, "still RUNNING when its run ended: no Tune trial finished it")
    return len(stale)


# ------------------------------------------------------------------------------ Tune's snapshot


def snapshot_trial(entry: list[Any]) -> Any:
    """A Tune `Trial` from one `trial_data` entry of Tune's experiment_state-*.json."""
    from ray.tune.experiment.trial import Trial

    trial = Trial.from_json_state(entry[0], stub=True)
    trial.restore_run_metadata(entry[1])
    trial.stub = False
    return trial


def snapshot_entry(trial: Any) -> list[Any]:
    """The `trial_data` entry of a changed trial, to write back into the snapshot."""
    trial.invalidate_json_state()
    return list(trial.get_json_state())


def register_checkpoint(trial: Any, name: str, rows: list[dict[str, Any]]) -> None:
    """Make checkpoint `name` the trial's latest, as Tune's own bookkeeping would."""
    from ray import tune
    from ray.train._internal.session import _TrainingResult

    metrics = next((r for r in reversed(rows) if r.get("checkpoint_dir_name") == name), None)
    metrics = dict(metrics or {"checkpoint_dir_name": name})
    path = f"{trial.storage.trial_fs_path}/{name}"
    result = _TrainingResult(
        checkpoint=tune.Checkpoint(path, filesystem=trial.storage.storage_filesystem),
        metrics=metrics,
    )
    manager = trial.run_metadata.checkpoint_manager
    manager._checkpoint_results.append(result)
    manager._latest_checkpoint_result = result
    trial.storage._update_checkpoint_index(metrics)
    if len(metrics) > 1:
        trial.run_metadata.last_result = metrics
    trial.run_metadata.invalidate_cache()
    trial.invalidate_json_state()


def record_error_files(trial: Any, names: set[str]) -> None:
    """Point the trial at Tune's own error files, where Tune wrote them before the stop."""
    if "error.txt" in names:
        trial.run_metadata.error_filename = "error.txt"
    if "error.pkl" in names:
        trial.run_metadata.pickled_error_filename = "error.pkl"
