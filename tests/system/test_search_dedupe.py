"""No configuration is trained twice (search.dedupe), with a real local Ray and Optuna's TPE.

A two-configuration space (l1 or l2) and 4 samples: with sampler seed 1, TPE suggests l2, l2,
l1, l2 (checked below on Optuna alone). With dedupe the second l2 is answered from the first
(one training, two rows, the second marked `repeat_of`, Optuna told the same values), and once
both configurations were tried the search stops early: 3 rows, not 4. With `search.dedupe:
false` all 4 train. The plan's counts are checked against what the searches ran.
"""

from __future__ import annotations

import io
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
import ray

from search.plan.plan import make_plan
from search.run.runner import run_search
from search.spec.parse import parse_spec
from tests.support.trials import fast_trial

SEED = 1


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def _spec(tmp_path, name: str, dedupe: bool):
    raw = fast_trial(
        "unused",
        data={"dataset": "digits", "train_limit": 300},
        dense={"epochs": 2},
        prune={"criterion": {"choice": ["l1", "l2"]}},
        finetune={"method": "ce", "epochs": 1},
        search={
            "mode": "optimize",
            "num_samples": 4,
            "scheduler": "none",
            "max_concurrent": 1,
            "sampler_seed": SEED,
            "dedupe": dedupe,
        },
    )
    raw.pop("cache_dir")
    return parse_spec(raw, name=name, storage=str(tmp_path))


def test_tpe_suggests_a_repeat_in_this_space():
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=SEED))
    seen = []
    for _ in range(4):
        trial = study.ask()
        seen.append(trial.suggest_categorical("prune.criterion", ["l1", "l2"]))
        study.tell(trial, 0.5)
    assert seen == ["l2", "l2", "l1", "l2"]


def _rows(outcome):
    table = pq.read_table(f"{outcome.experiment.location}/results/trials.parquet")
    return table.to_pylist()


def _study(outcome):
    from search.run.study import open_storage

    exp = outcome.experiment
    return optuna.load_study(study_name=exp.study_name, storage=open_storage(exp.journal_path))


def test_a_repeat_is_answered_not_trained_and_an_exhausted_space_stops(tmp_path, capsys):
    spec = _spec(tmp_path, "dedupe", dedupe=True)
    plan = make_plan(spec, epoch_seconds=1.0)
    assert (plan.counts.trials, plan.counts.space_size, plan.trainings) == (4, 2, 2)
    stream = io.StringIO()
    outcome = run_search(spec, stream=stream)
    assert outcome.exit_code == 0, stream.getvalue()
    rows = _rows(outcome)  # sorted by trial id, not by start
    assert sorted(r["criterion"] for r in rows) == ["l1", "l2", "l2"]  # stopped: both tried
    (repeat,) = [r for r in rows if r["repeat_of"] is not None]
    (first,) = [r for r in rows if r["trial_id"] == repeat["repeat_of"]]
    assert first["criterion"] == repeat["criterion"] == "l2"
    for column in ("robust_acc", "clean_acc", "val_robust_acc", "params", "config_json"):
        assert repeat[column] == first[column], column
    assert (
        "all 2 configurations of the space were tried; stopping early" in capsys.readouterr().out
    )
    checkpoints = Path(outcome.experiment.location) / "tune" / "run-000"
    assert list(checkpoints.glob(f"trial_{repeat['trial_id']}/checkpoint_*/repeat_of.json"))
    assert not list(checkpoints.glob(f"trial_{first['trial_id']}/checkpoint_*/repeat_of.json"))
    # one training: the repeat's own Tune run did no epochs of work
    trials = {t.user_attrs["tune_trial_id"]: t for t in _study(outcome).trials}
    assert trials[repeat["trial_id"]].values == trials[first["trial_id"]].values
    assert trials[repeat["trial_id"]].user_attrs["repeat_of"] == first["trial_id"]
    assert len({t.user_attrs["config_key"] for t in trials.values()}) == 2
    assert plan.trainings == len({r["config_json"] for r in rows})


def test_dedupe_false_trains_every_suggestion(tmp_path):
    spec = _spec(tmp_path, "nodedupe", dedupe=False)
    plan = make_plan(spec, epoch_seconds=1.0)
    assert plan.trainings == plan.counts.trials == 4
    outcome = run_search(spec, stream=io.StringIO())
    rows = _rows(outcome)
    assert len(rows) == plan.counts.trials
    assert sorted(r["criterion"] for r in rows) == ["l1", "l2", "l2", "l2"]
    assert all(r["repeat_of"] is None for r in rows)
    assert all(r["status"] == "TERMINATED" for r in rows)


def _plant_unfinished_repeat(location: Path, study, repeat: str, original: str) -> None:
    """As a stop between the original's tell and its end marker leaves it, with the repeat
    not yet answered: the original COMPLETE in the journal and TERMINATED in Tune's snapshot,
    but no end marker; the repeat PENDING in Tune, RUNNING in Optuna, with no files."""
    import json
    import shutil

    from search.run import tune_internals as internals
    from search.state.experiment import Experiment

    run = location / "tune" / "run-000"
    (run / f"trial_{original}" / "robprune-end.json").unlink()
    shutil.rmtree(run / f"trial_{repeat}")
    state = sorted(run.glob("experiment_state-*.json"))[-1]
    data = json.loads(state.read_text())
    for pair in data["trial_data"]:
        trial = internals.snapshot_trial(pair)
        if trial.trial_id == repeat:  # as Tune saves a trial that has not reported yet
            trial.set_status("PENDING")
            manager = trial.run_metadata.checkpoint_manager
            manager._checkpoint_results, manager._latest_checkpoint_result = [], None
            trial.run_metadata.last_result = {}
            pair[0], pair[1] = internals.snapshot_entry(trial)
    state.write_text(json.dumps(data))
    (storage_id,) = [t._trial_id for t in study.trials if t.user_attrs["tune_trial_id"] == repeat]
    journal = location / "optuna" / "journal.log"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    told = [op for op in lines if op["op_code"] == 6 and op.get("trial_id") == storage_id]
    assert told, "the repeat's tell was not found in the journal"
    journal.write_text("".join(json.dumps(op) + "\n" for op in lines if op not in told))
    Experiment.open(str(location)).set_segment_status("run-000", "interrupted")


def test_a_repeat_whose_original_has_a_journal_value_but_no_end_marker(tmp_path):
    """The records disagree (journal: a value; storage: no end marker). The resume writes the
    marker from the record and the repeat is answered from it at once, never waiting."""
    import time

    from search.run.runner import resume_experiment

    outcome = run_search(_spec(tmp_path, "lostmarker", dedupe=True), stream=io.StringIO())
    rows = _rows(outcome)
    (repeat,) = [r["trial_id"] for r in rows if r["repeat_of"] is not None]
    (original,) = [r["repeat_of"] for r in rows if r["repeat_of"] is not None]
    location = Path(outcome.experiment.location)
    _plant_unfinished_repeat(location, _study(outcome), repeat, original)
    stream, start = io.StringIO(), time.monotonic()
    again = resume_experiment(str(location), stream=stream)
    assert again.exit_code == 0, stream.getvalue()
    assert time.monotonic() - start < 120, stream.getvalue()
    assert "end markers written from the other records" in stream.getvalue()
    assert (location / "tune" / "run-000" / f"trial_{original}" / "robprune-end.json").exists()
    after = {r["trial_id"]: r for r in _rows(again)}
    assert len(after) == 3 and after[repeat]["repeat_of"] == original
    assert after[repeat]["robust_acc"] == after[original]["robust_acc"]
    trials = {t.user_attrs["tune_trial_id"]: t for t in _study(again).trials}
    assert trials[repeat].state.name == "COMPLETE"
    assert trials[repeat].values == trials[original].values
