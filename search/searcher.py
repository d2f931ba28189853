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

from search.spec import SearchSettings

__all__ = ["StudySearch", "open_storage", "make_sampler", "finalize_study"]


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
    ):
        self._journal = str(journal)
        super().__init__(
            space=space,
            metric=metric,
            mode=mode,
            sampler=sampler,
            study_name=study_name,
            storage=open_storage(journal),
        )

    # pickled into tuner.pkl (by Tune) and the searcher state (by save): no open storage
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_storage"] = None
        state["_ot_study"] = None
        state["_ot_trials"] = {tid: t._trial_id for tid, t in self._ot_trials.items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
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
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return len(stale)
