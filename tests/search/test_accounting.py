"""The journal decides how many trials a run hands out and how many run at once.

Tune's saved search state can be older than the Optuna journal, and a trial that resume's
reconciliation finished never reports to Tune's concurrency limiter again: a restored run
then either handed out too few trials and called itself finished, or waited forever for a
free slot. `StudySearch` counts from the journal instead; these checks use a real journal.
"""

from __future__ import annotations

import optuna
import pytest

pytest.importorskip("ray")

from ray.tune.search import Searcher  # noqa: E402

from search.run.study import (  # noqa: E402
    FAIL_REASON_ATTR,
    NEVER_STARTED,
    open_storage,
    run_accounting,
)
from search.run.tune_internals import StudySearch, _searcher  # noqa: E402


def _space(trial: optuna.trial.Trial) -> None:
    trial.suggest_float("x", 0.0, 1.0)


def _search(tmp_path, planned: int, run: str = "run-000") -> StudySearch:
    journal = tmp_path / "optuna" / "journal.log"
    StudySearch.journal_override = str(journal)
    search = StudySearch(
        _space,
        metric="robust_acc",
        mode="max",
        sampler=optuna.samplers.RandomSampler(seed=0),
        study_name="robprune",
        journal=journal,
        run=run,
        planned=planned,
    )
    assert search.set_max_concurrency(2) is True  # Tune's own limiter then passes through
    return search


def test_planned_and_concurrency_come_from_the_journal(tmp_path):
    search = _search(tmp_path, planned=3)
    assert isinstance(search.suggest("a"), dict) and isinstance(search.suggest("b"), dict)
    assert search.suggest("c") is None  # two live trials: wait
    search.on_trial_complete("a", {"robust_acc": 0.5})
    assert isinstance(search.suggest("c"), dict)
    search.on_trial_complete("b", {"robust_acc": 0.4}, error=True)  # a failure is a result
    assert search.suggest("d") == Searcher.FINISHED  # three accounted for: a, b, c
    study = optuna.load_study(study_name="robprune", storage=open_storage(search._journal))
    assert run_accounting(study.get_trials(), "run-000") == (3, 1)
    assert run_accounting(study.get_trials(), "run-001") == (0, 0)


def test_a_trial_failed_as_never_started_is_asked_again(tmp_path):
    search = _search(tmp_path, planned=2)
    search.suggest("a")
    search.suggest("b")
    study = optuna.load_study(study_name="robprune", storage=open_storage(search._journal))
    b = next(t for t in study.get_trials() if t.user_attrs["tune_trial_id"] == "b")
    optuna.trial.Trial(study, b._trial_id).set_user_attr(FAIL_REASON_ATTR, NEVER_STARTED)
    study.tell(b.number, state=optuna.trial.TrialState.FAIL)  # what reconciliation does
    assert isinstance(search.suggest("c"), dict)  # in b's place: the plan is kept
    search.on_trial_complete("a", {"robust_acc": 0.5})
    search.on_trial_complete("c", {"robust_acc": 0.6})
    assert search.suggest("d") == Searcher.FINISHED


def test_the_limits_survive_a_restore(tmp_path):
    search = _search(tmp_path, planned=3)
    search.suggest("a")
    search.save(str(tmp_path / "searcher.pkl"))
    restored = _search(tmp_path, planned=99)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored._planned == 3 and restored._max_concurrent == 2
    assert isinstance(restored.suggest("b"), dict)
    assert restored.suggest("c") is None
    restored.on_trial_complete("a", {"robust_acc": 0.5})
    assert isinstance(restored.suggest("c"), dict)
    assert restored.suggest("d") == Searcher.FINISHED


def test_state_files_cut_short_by_a_kill_are_set_aside(tmp_path):
    """Tune restarted a run with num_samples=1 when its newest snapshot was cut short."""
    import pickle

    import pyarrow.fs as pafs
    import ray.cloudpickle as cloudpickle

    from search.run.tune_state import repair_run_state

    run = tmp_path / "run-000"
    run.mkdir()
    (run / "experiment_state-2026-01-01_00-00-01.json").write_text('{"trial_data": []}')
    (run / "experiment_state-2026-01-01_00-00-02.json").write_text("")  # the kill's
    (run / "search_gen_state-2026-01-01_00-00-01.json").write_bytes(cloudpickle.dumps({"a": 1}))
    (run / "searcher-state-2026-01-01_00-00-01.pkl").write_bytes(pickle.dumps({"b": 2})[:-3])
    fs = pafs.LocalFileSystem()
    restorable, aside = repair_run_state(fs, str(run))
    assert not restorable  # the only searcher state is cut short: Tune could not restore it
    assert sorted(aside) == [
        "experiment_state-2026-01-01_00-00-02.json",
        "searcher-state-2026-01-01_00-00-01.pkl",
    ]
    assert (run / ".cut-short-experiment_state-2026-01-01_00-00-02.json").exists()
    (run / "searcher-state-2026-01-01_00-00-01.pkl").write_bytes(pickle.dumps({"b": 2}))
    assert repair_run_state(fs, str(run)) == (True, [])


def test_a_restored_search_is_reopened(tmp_path):
    """A run whose searcher had said FINISHED, and then lost a trial to reconciliation (an ask
    the stored journal never got), asks for its replacement instead of ending short."""
    import sys

    import pyarrow.fs as pafs
    import ray.cloudpickle as cloudpickle

    from search.run.tune_state import reopen_search

    run = tmp_path / "run-000"
    run.mkdir()
    state = {"counter": 4, "total_samples": sys.maxsize, "finished": True, "experiment": None}
    (run / "search_gen_state-2026-01-01_00-00-01.json").write_bytes(cloudpickle.dumps(state))
    fs = pafs.LocalFileSystem()
    assert reopen_search(fs, str(run)) is True
    saved = cloudpickle.loads((run / "search_gen_state-2026-01-01_00-00-01.json").read_bytes())
    assert saved == {**state, "finished": False}
    assert reopen_search(fs, str(run)) is False  # nothing left to reopen
    assert sorted(p.name for p in run.iterdir()) == ["search_gen_state-2026-01-01_00-00-01.json"]


def test_a_full_run_is_not_counted_again_on_every_ask(tmp_path, monkeypatch):
    """Tune asks on every step while the run is full: the study is read again when this
    searcher hands out or ends a trial, or a second later for another writer's changes,
    not on every ask (at thousands of trials each read costs milliseconds)."""
    search = _search(tmp_path, planned=5)
    search.suggest("a")
    search.suggest("b")
    reads = []
    original = search._ot_study.get_trials
    monkeypatch.setattr(
        search._ot_study, "get_trials", lambda *a, **k: reads.append(1) or original(*a, **k)
    )
    assert search.suggest("c") is None  # two live trials: wait
    first = len(reads)
    assert [search.suggest("c") for _ in range(50)] == [None] * 50
    assert len(reads) == first
    # another writer (here a second storage object, as reconciliation or the grid's callback)
    study = optuna.load_study(study_name="robprune", storage=open_storage(search._journal))
    a = next(t for t in study.get_trials() if t.user_attrs["tune_trial_id"] == "a")
    study.tell(a.number, 0.5)
    monkeypatch.setattr(_searcher, "READ_EVERY_S", 0.0)  # as if a second had passed
    assert isinstance(search.suggest("c"), dict)  # the change is seen: a slot is free
    assert len(reads) > first


def test_a_trial_the_searcher_ends_frees_its_slot_at_once(tmp_path):
    search = _search(tmp_path, planned=5)
    search.suggest("a")
    search.suggest("b")
    assert search.suggest("c") is None
    search.on_trial_complete("a", {"robust_acc": 0.5})
    assert isinstance(search.suggest("c"), dict)
