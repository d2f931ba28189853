"""OptunaSearch whose study lives in the experiment's journal file, and survives moving.

Ray's OptunaSearch pickles its study together with the storage object, which names an
absolute path. Restoring the experiment elsewhere (another machine, a working copy of a
remote experiment, a renamed directory) must reopen the journal where it is now, so the
study and the open Optuna trials are saved by name and id and reopened on restore.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import optuna
from ray.tune.search.optuna import OptunaSearch

from search.spec.settings import SearchSettings

__all__ = [
    "StudySearch",
    "open_storage",
    "make_sampler",
    "finalize_study",
    "TUNE_TRIAL_ATTR",
    "RUN_ATTR",
]

#: Optuna user attributes linking an Optuna trial to its Tune trial (and run) durably.
TUNE_TRIAL_ATTR = "tune_trial_id"
RUN_ATTR = "tune_run"


def open_storage(journal: str | Path) -> optuna.storages.JournalStorage:
    """Optuna journal storage (one append-only file): optuna-dashboard opens it directly."""
    path = Path(journal)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def make_sampler(settings: SearchSettings, offset: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler the spec names; `offset` varies its seed between runs of one study."""
    seed = settings.sampler_seed + offset
    if settings.sampler == "random" or settings.mode == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "nsgaii":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if settings.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


class StudySearch(OptunaSearch):
    """OptunaSearch on a persisted study; the journal path is re-resolved on restore."""

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
    ):
        self._journal = str(journal)
        self._run = run
        super().__init__(
            space=space,
            metric=metric,
            mode=mode,
            sampler=sampler,
            study_name=study_name,
            storage=open_storage(journal),
        )

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """Ask Optuna, and record in the journal which Tune trial the Optuna trial is: the
        durable link that `search.run.reconcile` reads after a crash."""
        config = super().suggest(trial_id)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and TUNE_TRIAL_ATTR not in ot_trial.user_attrs:
            ot_trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
            ot_trial.set_user_attr(RUN_ATTR, self._run)
        return config

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
        if self._open_trial(trial_id) is not None:
            super().on_trial_complete(trial_id, result, error)

    # pickled into tuner.pkl (by Tune) and the searcher state (by save): no open storage
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_storage"] = None
        state["_ot_study"] = None
        state["_ot_trials"] = {tid: t._trial_id for tid, t in self._ot_trials.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_run", "")
        journal = StudySearch.journal_override or self._journal
        self._journal = journal
        self._storage = open_storage(journal)
        self._ot_study = optuna.load_study(
            study_name=self._study_name,
            storage=self._storage,
            sampler=self._sampler,
            pruner=optuna.pruners.NopPruner(),
        )
        self._ot_trials = {
            tid: optuna.trial.Trial(self._ot_study, ot_id)
            for tid, ot_id in state["_ot_trials"].items()
        }
        # the journal is the record: a trial asked after this state was saved is linked too
        running = (optuna.trial.TrialState.RUNNING,)
        for frozen in self._ot_study.get_trials(deepcopy=False, states=running):
            tid = frozen.user_attrs.get(TUNE_TRIAL_ATTR)
            if tid and frozen.user_attrs.get(RUN_ATTR) == self._run and tid not in self._ot_trials:
                self._ot_trials[tid] = optuna.trial.Trial(self._ot_study, frozen._trial_id)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as handle:
            pickle.dump(self.__getstate__(), handle)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.__setstate__(pickle.load(handle))


def finalize_study(journal: str | Path, study_name: str) -> int:
    """Close Optuna trials that no Tune trial will ever finish (asked just before a crash).

    Called when no search is running. Returns how many were marked FAIL.
    """
    storage = open_storage(journal)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in stale:
        reason = "still RUNNING when its run ended: no Tune trial finished it"
        optuna.trial.Trial(study, trial._trial_id).set_user_attr("fail_reason", reason)
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(stale)
