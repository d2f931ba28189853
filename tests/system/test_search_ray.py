"""Searches with a real local Ray (loopback, 2 CPUs) and the real trial on digits.

One Ray session for the module: grid mode (factorial x seeds, failures, Parquet, TensorBoard,
export twice), optimize mode with conditional parameters, and --extend on the same study.
"""

from __future__ import annotations

import io
import json

import optuna
import pyarrow.parquet as pq
import pytest
import ray
import yaml

from cli import main as cli_main
from robprune.io.results_schema import SCHEMAS
from search.results.export import export_experiment
from search.run.runner import resume_experiment, run_search
from search.spec.parse import parse_spec
from search.state.experiment import Experiment
from tests.support.trials import fast_trial


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


def _base(**sections) -> dict:
    """A fast digits trial as a spec: the dense models go to EXPERIMENT/dense."""
    spec = fast_trial(
        "unused", data={"dataset": "digits", "train_limit": 400}, dense={"epochs": 3}, **sections
    )
    spec.pop("cache_dir")
    return spec


def _read(exp_dir, name):
    return pq.read_table(f"{exp_dir}/results/{name}.parquet")


def _study(exp: Experiment) -> optuna.Study:
    """The experiment's study as any Optuna user opens it: its journal file, by its name."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(exp.journal_path))
    )
    (name,) = optuna.get_all_study_names(storage)
    assert name == exp.name  # named after the experiment
    return optuna.load_study(study_name=name, storage=storage)


def _files(location) -> dict[str, int]:
    """Every file of an experiment with its modification time."""
    from pathlib import Path

    return {str(p): p.stat().st_mtime_ns for p in Path(location).rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    storage = tmp_path_factory.mktemp("grid")
    raw = _base(
        prune={
            "sparsity": {"choice": [0.5, 0.97]},
            "criterion": {"choice": ["l1", "random"]},
            "max_layer_ratio": 0.6,
        },  # 0.97 cannot be reached: those trials fail
        finetune={"method": "ce", "epochs": 2},
        search={"mode": "grid", "seeds": 2, "max_concurrent": 2},
    )
    spec = parse_spec(raw, name="grid", storage=str(storage))
    stream = io.StringIO()
    outcome = run_search(spec, stream=stream)
    return spec, outcome, stream.getvalue()


def test_grid_is_the_factorial_times_seeds_each_once(grid_run):
    spec, outcome, _ = grid_run
    trials = _read(outcome.experiment.location, "trials").to_pylist()
    assert len(trials) == 2 * 2 * 2
    cells = [(t["criterion"], t["sparsity_target"], t["seed"]) for t in trials]
    assert sorted(cells) == sorted(
        (c, s, seed) for c in ("l1", "random") for s in (0.5, 0.97) for seed in (0, 1)
    )
    assert len({t["trial_id"] for t in trials}) == 8
    for t in trials:
        if t["sparsity_target"] == 0.97:
            assert t["status"] == "ERROR"
            assert "TrialFailed" in t["error"] and "unreachable" in t["error"]
            assert t["robust_acc"] is None
        else:
            assert t["status"] == "TERMINATED" and t["error"] is None
            assert 0 <= t["robust_acc"] <= t["clean_acc"] <= 1
            assert t["epochs_completed"] == 2 and t["params"] < t["params_dense"]
            assert json.loads(t["attack_config_json"])["pgd5"]["steps"] == 5
        assert t["temperature"] is None and t["beta"] is None  # uniform rule, ce
        assert json.loads(t["config_json"])["prune"]["criterion"] == t["criterion"]
    assert outcome.failed == 4 and outcome.completed == 4
    assert outcome.exit_code == 1  # the search completes; the exit code says some failed


def test_progress_lines_and_final_summary(grid_run):
    _, outcome, text = grid_run
    lines = text.splitlines()
    assert sum(" started " in ln for ln in lines) == 8
    assert sum(" completed " in ln for ln in lines) == 4
    failed = [ln for ln in lines if " FAILED " in ln]
    assert len(failed) == 4 and all("unreachable" in ln for ln in failed)
    assert any("4 TERMINATED, 4 ERROR" in ln for ln in lines)
    assert any(ln.startswith("trial_id") for ln in lines)  # the best-trials table
    assert f"results: {outcome.results_dir}/" in text and "tensorboard --logdir" in text


def test_export_command(grid_run, capsys):
    _, outcome, _ = grid_run
    assert cli_main(["export", outcome.experiment.location]) == 0
    assert "8 trials (4 TERMINATED, 4 ERROR)" in capsys.readouterr().out


def test_dense_models_trained_once_before_the_trials(grid_run):
    _, outcome, _ = grid_run
    exp = outcome.experiment
    dense = sorted((exp.dense_dir / "dense").glob("*/meta.json"))
    assert len(dense) == 2  # one per seed, shared by the 4 cells of that seed
    first_trial = min(
        p.stat().st_mtime
        for p in (exp.dense_dir.parent / "tune" / "run-000").glob("trial_*/params.json")
    )
    assert all(m.stat().st_mtime < first_trial for m in dense)
    for row in _read(exp.location, "trials").to_pylist():
        assert json.loads(row["config_json"])["cache_dir"] == str(exp.dense_dir)


def test_plan_counts_what_the_searches_ran(grid_run, optimize_run):
    from search.plan.plan import make_plan

    for spec, outcome in (grid_run[:2], optimize_run):
        plan = make_plan(spec, epoch_seconds=1.0)  # counts only: no calibration needed
        rows = _read(outcome.experiment.location, "trials").to_pylist()
        dense = list((outcome.experiment.dense_dir / "dense").glob("*/meta.json"))
        assert plan.counts.trials == len(rows)
        assert len(plan.counts.dense) == len(dense)
        assert {d.seed for d in plan.counts.dense} == {r["seed"] for r in rows}


def test_parquet_schemas_column_by_column(grid_run):
    _, outcome, _ = grid_run
    for name, schema in SCHEMAS.items():
        table = _read(outcome.experiment.location, name)
        assert table.schema.names == schema.names, name
        for field in schema:
            assert table.schema.field(field.name).type == field.type, (name, field.name)
    epochs = _read(outcome.experiment.location, "epochs").to_pylist()
    assert len(epochs) == 4 * 2 and {e["epoch"] for e in epochs} == {1, 2}
    layers = _read(outcome.experiment.location, "layers").to_pylist()
    assert layers and all(r["channels_after"] <= r["channels_before"] for r in layers)


def test_export_twice_gives_identical_tables(grid_run):
    _, outcome, _ = grid_run
    exp = Experiment.open(outcome.experiment.location)
    before = {n: (exp.path("results", f"{n}.parquet")) for n in SCHEMAS}
    first = {n: open(p, "rb").read() for n, p in before.items()}
    export_experiment(exp)
    second = {n: open(p, "rb").read() for n, p in before.items()}
    assert first == second


def test_tensorboard_scalars_and_hparams_read_back(grid_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    _, outcome, _ = grid_run
    trials = _read(outcome.experiment.location, "trials").to_pylist()
    done = next(t for t in trials if t["status"] == "TERMINATED")
    acc = EventAccumulator(f"{outcome.results_dir}/tensorboard/{done['trial_id']}")
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    assert {"val/robust_acc", "val/clean_acc", "train/loss", "final/robust_acc"} <= set(scalars)
    assert [e.step for e in acc.Scalars("val/robust_acc")] == [1, 2]
    assert acc.Scalars("final/robust_acc")[0].value == pytest.approx(done["robust_acc"])
    content = acc.PluginTagToContent("hparams")
    start = next(
        plugin_data_pb2.HParamsPluginData.FromString(v).session_start_info
        for v in content.values()
        if plugin_data_pb2.HParamsPluginData.FromString(v).HasField("session_start_info")
    )
    hparams = dict(start.hparams)
    assert hparams["criterion"].string_value == done["criterion"]
    assert hparams["sparsity_target"].number_value == pytest.approx(done["sparsity_target"])
    assert "temperature" not in hparams  # did not apply


def test_a_grid_writes_an_optuna_study_with_every_trial(grid_run):
    _, outcome, text = grid_run
    exp = outcome.experiment
    study = _study(exp)  # the journal alone, as optuna-dashboard loads it
    rows = {t["trial_id"]: t for t in _read(exp.location, "trials").to_pylist()}
    epochs = _read(exp.location, "epochs").to_pylist()
    assert len(study.trials) == len(rows) == 8
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE]
    for trial in study.trials:
        row = rows[trial.user_attrs["tune_trial_id"]]
        assert trial.params == {
            "prune.sparsity": row["sparsity_target"],
            "prune.criterion": row["criterion"],
            "seed": row["seed"],
        }
        if row["status"] == "ERROR":
            assert trial.state == optuna.trial.TrialState.FAIL and trial.values is None
            continue
        last = max(
            (e for e in epochs if e["trial_id"] == row["trial_id"]), key=lambda e: e["epoch"]
        )
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.values == [pytest.approx(last["val_robust_acc"])]
    assert f"optuna: optuna-dashboard {exp.journal_path}" in text


def test_status_and_list_of_finished_experiments(grid_run, capsys):
    _, outcome, _ = grid_run
    exp = outcome.experiment
    before = _files(exp.location)
    assert cli_main(["status", exp.location]) == 0
    out = capsys.readouterr().out
    assert "state:      finished" in out
    assert "trials:     4 TERMINATED, 4 ERROR, 0 RUNNING, 0 PENDING of 8 planned" in out
    rows = _read(exp.location, "trials").to_pylist()
    best = max((r for r in rows if r["status"] == "TERMINATED"), key=lambda r: r["val_robust_acc"])
    assert f"trial {best['trial_id']}: val_robust_acc = {best['val_robust_acc']:.4f}" in out
    assert "(validation under pgd3, max)" in out and "last error: trial " in out
    assert "unreachable" in out and f"results:    {exp.location}/results/" in out
    assert f"report:     none yet: robprune report {exp.location}" in out
    assert cli_main(["status", exp.location, "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["state"] == "finished" and view["trials"]["ERROR"] == 4
    assert view["best"]["trial_id"] == best["trial_id"] and view["best"]["attack"] == "pgd3"
    storage = str(Experiment.open(exp.location).location).rsplit("/", 1)[0]
    assert cli_main(["list", storage]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("grid") and "finished" in line and "4 TERMINATED" in line
    assert cli_main(["list", storage, "--json"]) == 0
    assert [v["name"] for v in json.loads(capsys.readouterr().out)] == ["grid"]
    assert _files(exp.location) == before  # reading writes nothing


def test_trials_name_the_attack_of_every_robust_number(grid_run):
    _, outcome, _ = grid_run
    done = [t for t in _read(outcome.experiment.location, "trials").to_pylist() if t["clean_acc"]]
    for t in done:
        assert (t["robust_attack"], t["pgd_attack"], t["val_robust_attack"]) == (
            "pgd5",
            "pgd5",
            "pgd3",
        )
        assert t["attack_norm"] == "linf" and t["attack_epsilon"] == pytest.approx(0.1)
        assert t["cw_attack"] is None  # no CW attack ran


@pytest.fixture(scope="module")
def optimize_run(tmp_path_factory):
    storage = tmp_path_factory.mktemp("opt")
    raw = _base(
        prune={
            "ratio": {"choice": ["uniform", "mrs"]},
            "mrs": {"temperature": {"loguniform": [0.1, 10.0]}, "num_examples": 64},
        },
        finetune={
            "method": {"choice": ["ce", "trades"]},
            "epochs": 2,
            "trades": {"beta": {"uniform": [1.0, 6.0]}},
        },
        search={
            "mode": "optimize",
            "objectives": ["robust_acc:max", "clean_acc:max"],
            "num_samples": 6,
            "scheduler": "asha",
            "max_concurrent": 2,
            "sampler_seed": 3,
        },
    )
    spec = parse_spec(raw, name="opt", storage=str(storage))
    return spec, run_search(spec)


def test_optimize_conditional_columns_are_null_where_they_do_not_apply(optimize_run):
    _, outcome = optimize_run
    assert outcome.exit_code == 0
    trials = _read(outcome.experiment.location, "trials").to_pylist()
    assert len(trials) == 6
    assert {t["ratio_rule"] for t in trials} == {"uniform", "mrs"}
    for t in trials:
        assert (t["temperature"] is None) == (t["ratio_rule"] != "mrs")
        assert (t["beta"] is None) == (t["finetune_method"] != "trades")
        if t["temperature"] is not None:
            assert 0.1 <= t["temperature"] <= 10.0
    study = _study(outcome.experiment)
    assert len(study.trials) == 6
    for trial in study.trials:
        assert ("prune.mrs.temperature" in trial.params) == (trial.params["prune.ratio"] == "mrs")


def test_search_objective_is_the_validation_metric_not_test(optimize_run):
    _, outcome = optimize_run
    location = outcome.experiment.location
    study = _study(outcome.experiment)
    trials = {t["trial_id"]: t for t in _read(location, "trials").to_pylist()}
    epochs = _read(location, "epochs").to_pylist()
    differs = 0
    for ot in study.trials:
        tid = ot.user_attrs["tune_trial_id"]
        last = max((e for e in epochs if e["trial_id"] == tid), key=lambda e: e["epoch"])
        # Optuna saw the validation subset's accuracies of the last reported epoch
        assert ot.values == [
            pytest.approx(last["val_robust_acc"]),
            pytest.approx(last["val_clean_acc"]),
        ]
        differs += ot.values[0] != pytest.approx(trials[tid]["robust_acc"])
    assert differs, "the test split's robust_acc equals the objective everywhere"


def test_unreadable_final_result_makes_the_trial_an_error(grid_run):
    _, outcome, _ = grid_run
    exp = Experiment.open(outcome.experiment.location)
    done = [t for t in _read(exp.location, "trials").to_pylist() if t["status"] == "TERMINATED"]
    victim = done[0]["trial_id"]
    tune_dir = exp.dense_dir.parent / "tune" / "run-000"
    (result,) = tune_dir.glob(f"trial_{victim}/checkpoint_*/final/result.json")
    original = result.read_text()
    try:
        result.write_text(original[: len(original) // 2])  # cut short, as by a full disk
        rows = export_experiment(exp).trials
    finally:
        result.write_text(original)
        export_experiment(exp)
    row = next(r for r in rows if r.trial_id == victim)
    assert row.status == "ERROR" and "unreadable final/result.json" in row.error
    assert row.get("robust_acc") is None
    assert sum(r.status == "TERMINATED" for r in rows) == len(done) - 1


def test_extend_adds_exactly_n_trials_to_the_same_study(optimize_run):
    _, outcome = optimize_run
    location = outcome.experiment.location
    journal = outcome.experiment.journal_path
    extended = resume_experiment(location, extend=3)
    assert extended.exit_code == 0
    study = _study(outcome.experiment)
    assert study.study_name == "opt" and journal == outcome.experiment.journal_path
    assert len(study.trials) == 9
    assert [t.number for t in study.trials] == list(range(9))
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    trials = _read(location, "trials").to_pylist()
    assert len(trials) == 9 and len({t["trial_id"] for t in trials}) == 9
    exp = Experiment.open(location)
    assert [s.name for s in exp.segments] == ["run-000", "run-001"]
    assert all(s.status == "finished" for s in exp.segments)
    resolved = yaml.safe_load(exp.read_spec_yaml())
    assert resolved["name"] == "opt"
    # nothing left to resume: a plain resume (or --extend 0) says so and writes nothing
    before = _files(exp.location)
    again = resume_experiment(location)
    assert again.exit_code == 0 and again.completed == 9
    assert cli_main(["resume", location, "--extend", "0"]) == 0
    assert _files(exp.location) == before


def test_demo_runs_the_crossed_grid(tmp_path):
    from search.demo import run_demo

    stream = io.StringIO()
    assert run_demo(storage=str(tmp_path), stream=stream) == 0
    (exp_dir,) = tmp_path.glob("demo-*")
    trials = _read(exp_dir, "trials").to_pylist()
    # 2 criteria x 2 fine-tuning methods x 4 ratio rules x 2 sparsities, one seed
    assert len(trials) == 2 * 2 * 4 * 2 and all(t["status"] == "TERMINATED" for t in trials)
    cells = {
        (t["criterion"], t["finetune_method"], t["ratio_rule"], t["sparsity_target"])
        for t in trials
    }
    assert len(cells) == 32
    assert f"results:    {exp_dir}/results" in stream.getvalue()
    # every trial has the strong response; the report analyses it and states the agreement
    assert all(t["strong_acc"] is not None and t["strong_n"] == 180 for t in trials)
    report = (exp_dir / "report" / "report.md").read_text()
    assert "Response analysed: strong_acc" in report and "Kendall's tau-b" in report
    # the headline's first sentence answers the project's question: criterion or fine-tuning?
    headline = next(line for line in report.splitlines() if line.startswith("> **"))
    first = headline.removeprefix("> **").split(". ")[0]
    assert "criterion" in first and "fine-tuning" in first, first
