"""`StudySearch`: Ray's OptunaSearch on the experiment's persisted study."""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from search.run.continuation import orphans, relink
from search.run.storage_fault import faulted
from search.run.study import (
    RUN_ATTR,
    TUNE_TRIAL_ATTR,
    configurations_tried,
    open_storage,
    run_accounting,
)
from search.run.tune_internals._members import _SEARCH_MEMBERS, check_tune_internals, require
from search.state.repeats import CONFIG_KEY_ATTR, REPEAT_ATTR, REPEAT_KEY, Originals, config_key

__all__ = ["StudySearch"]

_T = TypeVar("_T")
#: Seconds a count of the journal is reused while this searcher hands out and ends nothing.
READ_EVERY_S = 1.0


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
        self._ended = 0  # trials this searcher saw end: its counts of the journal are stale
        self._read_cache: dict[str, tuple[Any, float, Any]] = {}
        super().__init__(
            space=space,
            metric=metric,
            mode=mode,
            sampler=sampler,
            study_name=study_name,
            storage=open_storage(journal),
        )
        require(self, "ray.tune OptunaSearch", _SEARCH_MEMBERS)
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
            left := self._unchanged_or(
                "orphans", lambda: orphans(self._ot_study, self._run, self._ot_trials.keys())
            )
        ):
            # a run rebuilt from the records: its unfinished trials first, where they stopped
            self._ot_trials[trial_id] = optuna.trial.Trial(self._ot_study, left[0]._trial_id)
            extra = relink(self._ot_trials[trial_id], left[0], trial_id)
            self._originals = None  # read again: an original may have changed its Tune id
        if trial_id not in self._ot_trials:
            accounted, live, tried = self._tally()
            if self._planned is not None and accounted >= self._planned:
                return Searcher.FINISHED
            if self._exhausted(tried):
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

    def _tally(self) -> tuple[int, int, int]:
        """(accounted, live, configurations tried) of this run, from the journal."""

        def count() -> tuple[int, int, int]:
            trials = self._ot_study.get_trials(deepcopy=False)
            return (*run_accounting(trials, self._run), configurations_tried(trials))

        return self._unchanged_or("tally", count)

    def _unchanged_or(self, name: str, compute: Callable[[], _T]) -> _T:
        """`compute()`, or its value of less than `READ_EVERY_S` ago if this searcher has
        handed out or ended no trial since.

        Tune asks for a trial on every step of its loop while the run is full, and reading
        every trial of the study costs milliseconds at thousands of trials: read on each ask,
        it made the driver's cost per trial grow with the trials. What this searcher does
        itself is seen at once; what another writer does to the journal (reconciliation, a
        trial marked as never started) within `READ_EVERY_S`.
        """
        version = (self._ended, len(self._ot_trials))
        now = time.monotonic()
        hit = self._read_cache.get(name)
        if hit is not None and hit[0] == version and now - hit[1] < READ_EVERY_S:
            return hit[2]
        value = compute()
        self._read_cache[name] = (version, now, value)
        return value

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

    def _exhausted(self, tried: int) -> bool:
        """Every configuration of a finite space was tried (dedupe on): say so, stop."""
        if not self._dedupe or self._space_size is None:
            return False
        if tried < self._space_size:
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
        self._ended += 1  # the counts are read again
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
        state["_read_cache"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_run", "")
        self.__dict__.setdefault("_planned", None)
        self.__dict__.setdefault("_max_concurrent", 0)
        self.__dict__.setdefault("_dedupe", True)
        self.__dict__.setdefault("_space_size", None)
        self.__dict__.setdefault("_said_exhausted", False)
        self.__dict__.setdefault("_ended", 0)
        self._read_cache = {}
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
