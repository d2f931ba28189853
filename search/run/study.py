"""The experiment's Optuna study: its journal storage, its sampler, its trial attributes.

The study lives in one append-only journal file (optuna-dashboard opens it). Each Optuna trial
carries the id of its Tune trial and run as user attributes: the durable link the
reconciliation before a resume reads. The searcher that keeps the study across moves is
`search.run.tune_internals.StudySearch`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from search.spec.settings import SearchSettings
from search.state.journal_file import repair_journal
from search.state.repeats import CONFIG_KEY_ATTR

__all__ = [
    "open_storage",
    "make_sampler",
    "run_accounting",
    "configurations_tried",
    "TUNE_TRIAL_ATTR",
    "RUN_ATTR",
    "FAIL_REASON_ATTR",
    "NEVER_STARTED",
]

#: Optuna user attributes linking an Optuna trial to its Tune trial (and run) durably.
TUNE_TRIAL_ATTR = "tune_trial_id"
RUN_ATTR = "tune_run"
FAIL_REASON_ATTR = "fail_reason"
#: The fail reason of an Optuna trial asked for a Tune trial that Tune never saved: it does not
#: count towards the run's planned trials (the search asks for a new trial in its place).
NEVER_STARTED = (
    "never started: asked just before the driver stopped, before Tune saved the trial; "
    "the search asks for a new trial in its place"
)


def open_storage(journal: str | Path) -> optuna.storages.JournalStorage:
    """Optuna journal storage (one append-only file): optuna-dashboard opens it directly."""
    path = Path(journal)
    path.parent.mkdir(parents=True, exist_ok=True)
    note = repair_journal(path)  # a torn last record would fail every later read
    if note:
        print(f"note: {note}", flush=True)
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


def run_accounting(trials: list[Any], run: str) -> tuple[int, int]:
    """(accounted, live) Optuna trials of one Tune run, read from the journal.

    Accounted: every Optuna trial linked to a Tune trial of `run`, except those failed as
    never started. Live: those still RUNNING (a Tune trial is working on them).
    """
    accounted = live = 0
    for trial in trials:
        if trial.user_attrs.get(RUN_ATTR) != run or TUNE_TRIAL_ATTR not in trial.user_attrs:
            continue
        if trial.user_attrs.get(FAIL_REASON_ATTR) == NEVER_STARTED:
            continue
        accounted += 1
        live += trial.state == optuna.trial.TrialState.RUNNING
    return accounted, live


def configurations_tried(trials: list[Any]) -> int:
    """Distinct configurations (`config_key`) the study's Tune trials tried, in every run.

    The measure of an exhausted all-choice space (`search.dedupe`): the searcher stops asking
    at the space's size, and the run's accounting takes that stop as the run's end.
    """
    keys = {
        trial.user_attrs[CONFIG_KEY_ATTR]
        for trial in trials
        if CONFIG_KEY_ATTR in trial.user_attrs
        and TUNE_TRIAL_ATTR in trial.user_attrs
        and trial.user_attrs.get(FAIL_REASON_ATTR) != NEVER_STARTED
    }
    return len(keys)
