"""Nothing changes on disk unless something changed: output folders, caches, reports.

A folder that holds results is replaced only when asked; caches live in one documented place,
never the current folder; a report lands beside the results it reads.
"""

from __future__ import annotations

import os

from cli import main as cli_main
from tests.robprune.test_messages import _one_line_error
from tests.support.analysis_tables import planted_trials, write_experiment
from tests.support.paths import ROOT


def test_run_refuses_an_output_folder_that_holds_something(tmp_path, capsys):
    spec = tmp_path / "trial.yaml"
    spec.write_text((ROOT / "examples/digits.yaml").read_text())
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").write_text("{}")
    _one_line_error(capsys, ["run", str(spec), "-o", str(out)], "--overwrite", "result.json")
    assert (out / "result.json").read_text() == "{}" and len(list(out.iterdir())) == 1


def test_caches_go_to_one_documented_place(tmp_path, monkeypatch):
    from robprune.config import parse_trial_config

    monkeypatch.setenv("ROBPRUNE_CACHE_DIR", str(tmp_path / "c"))
    assert parse_trial_config({}).cache_dir == str(tmp_path / "c")
    monkeypatch.delenv("ROBPRUNE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = str(tmp_path / "xdg" / "robprune") if os.name == "posix" else None
    if expected and not os.uname().sysname == "Darwin":
        assert parse_trial_config({}).cache_dir == expected


def test_plan_writes_nothing_in_the_current_folder(tmp_path, monkeypatch, capsys):
    import yaml

    from tests.support.trials import fast_trial

    raw = fast_trial("unused", prune={"criterion": {"choice": ["l1", "l2"]}})
    raw.pop("cache_dir")
    raw["search"] = {"mode": "optimize", "num_samples": 2, "scheduler": "none"}
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "s.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("ROBPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    assert cli_main(["plan", "s.yaml"]) == 0
    assert "calibrated here on cpu" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["s.yaml"]
    assert list((tmp_path / "cache" / "calibration").glob("*.json"))


def test_report_writes_into_the_experiments_report_folder(tmp_path, monkeypatch, capsys):
    trials = planted_trials({"finetune_method": 0.6, "criterion": 0.05}, seeds=2, n=40)
    results = write_experiment(tmp_path / "exp", trials)
    monkeypatch.chdir(tmp_path)
    for given in (tmp_path / "exp", results, results / "trials.parquet"):
        assert cli_main(["report", str(given)]) == 0
        assert f"report: {tmp_path / 'exp' / 'report' / 'index.html'}" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]  # nothing in the cwd
    _one_line_error(capsys, ["report", str(results), str(results)], "-o: 2 results given")
