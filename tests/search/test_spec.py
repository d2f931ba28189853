"""Search specs without Ray: validation (one line, exit 2, nothing created), spaces, grids."""

from __future__ import annotations

import optuna
import pytest
import yaml

from cli import main as cli_main
from robprune.config import parse_trial_config
from search.spec.grid import grid_assignments, grid_configs
from search.spec.parse import parse_spec
from search.spec.space import SpaceFunction
from tests.support.paths import ROOT

BASE = {
    "name": "t",
    "data": {"dataset": "digits", "train_limit": 200},
    "model": {"arch": "small_cnn"},
    "prune": {"sparsity": {"choice": [0.3, 0.5]}, "criterion": "l1"},
    "finetune": {"method": "ce", "epochs": 1},
}


def _spec(**changes):
    spec = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        node = spec
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return spec


# (what is wrong, the spec or raw YAML text, a fragment the one-line message must contain)
BAD_SPECS = [
    ("unknown top-level key", _spec(foo=1), "foo"),
    ("unknown nested key", _spec(**{"prune.sparsityy": 0.5}), "prune.sparsityy"),
    ("unknown distribution", _spec(**{"prune.sparsity": {"normal": [0, 1]}}), "prune.sparsity"),
    (
        "two distribution keys",
        _spec(**{"prune.sparsity": {"choice": [0.5], "uniform": [0, 1]}}),
        "prune.sparsity",
    ),
    ("uniform lo >= hi", _spec(**{"prune.sparsity": {"uniform": [0.6, 0.4]}}), "lo < hi"),
    ("loguniform lo <= 0", _spec(**{"finetune.lr": {"loguniform": [0, 0.1]}}), "finetune.lr"),
    ("int with floats", _spec(**{"finetune.epochs": {"int": [1.5, 3]}}), "finetune.epochs"),
    ("empty choice", _spec(**{"prune.criterion": {"choice": []}}), "prune.criterion"),
    ("choice not a list", _spec(**{"prune.criterion": {"choice": "l1"}}), "prune.criterion"),
    (
        "duplicate option",
        _spec(**{"prune.criterion": {"choice": ["l1", "l1"]}}),
        "prune.criterion",
    ),
    (
        "distribution in search",
        _spec(**{"search.num_samples": {"int": [1, 4]}}),
        "search.num_samples",
    ),
    ("distribution in resources", _spec(**{"resources.cpu": {"choice": [1, 2]}}), "resources.cpu"),
    ("distribution in storage", _spec(storage={"choice": ["/a", "/b"]}), "storage"),
    ("distribution in name", _spec(name={"choice": ["a", "b"]}), "name"),
    ("distribution in cache_dir", _spec(cache_dir={"choice": ["/a", "/b"]}), "cache_dir"),
    ("bad mode", _spec(**{"search.mode": "bayes"}), "search.mode"),
    (
        "objective without direction",
        _spec(**{"search.objectives": ["robust_acc"]}),
        "search.objectives[0]",
    ),
    (
        "unknown objective",
        _spec(**{"search.objectives": ["accuracy:max"]}),
        "search.objectives[0]",
    ),
    (
        "objective twice",
        _spec(**{"search.objectives": ["robust_acc:max", "robust_acc:min"]}),
        "search.objectives[1]",
    ),
    ("num_samples 0", _spec(**{"search.num_samples": 0}), "search.num_samples"),
    (
        "num_samples in grid",
        _spec(**{"search.mode": "grid", "search.num_samples": 4}),
        "search.num_samples",
    ),
    ("seeds outside grid", _spec(**{"search.seeds": 3}), "search.seeds"),
    ("unknown scheduler", _spec(**{"search.scheduler": "hyperband"}), "search.scheduler"),
    ("unknown sampler", _spec(**{"search.sampler": "cmaes2"}), "search.sampler"),
    ("unknown search key", _spec(**{"search.trials": 3}), "search.trials"),
    (
        "asha with a final-only objective",
        _spec(**{"search.objectives": ["robust_acc:max", "flops:min"]}),
        "search.scheduler",
    ),
    (
        "final-only primary objective",
        _spec(**{"search.objectives": ["flops:min"], "search.scheduler": "none"}),
        "search.objectives[0]",
    ),
    ("negative cpu", _spec(**{"resources.cpu": -1}), "resources.cpu"),
    ("gpu fraction above one", _spec(**{"resources.gpu": 1.5}), "resources.gpu"),
    ("unknown resource", _spec(**{"resources.tpu": 1}), "resources.tpu"),
    ("option out of range", _spec(**{"prune.sparsity": {"choice": [0.5, 1.5]}}), "prune.sparsity"),
    ("unknown option", _spec(**{"prune.criterion": {"choice": ["l1", "l7"]}}), "prune.criterion"),
    (
        "range end out of range",
        _spec(**{"finetune.trades.beta": {"uniform": [1, 500]}}),
        "finetune.trades.beta",
    ),
    (
        "continuous distribution in grid",
        _spec(**{"search.mode": "grid", "prune.sparsity": {"uniform": [0.3, 0.6]}}),
        "prune.sparsity",
    ),
    (
        "continuous distribution in the dense stage",
        _spec(**{"dense.lr": {"uniform": [0.01, 0.1]}}),
        "dense.lr",
    ),
    ("optimize without distributions", _spec(**{"prune.sparsity": 0.5}), "search.mode"),
    ("bad experiment name", _spec(name="a b/c"), "name"),
    (
        "primary attack outside a choice of attacks",
        _spec(**{"eval.attacks": {"choice": [["fgsm"], ["fgsm", "pgd20"]]}}),
        "eval.primary",
    ),
    ("not a mapping", "- 1\n- 2\n", "mapping"),
    ("invalid YAML", "prune: {sparsity: [0.5\n", "not valid YAML"),
]


@pytest.mark.parametrize("what,spec,fragment", BAD_SPECS, ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_is_one_line_exit_2_and_creates_nothing(tmp_path, capsys, what, spec, fragment):
    path = tmp_path / "spec.yaml"
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    storage = tmp_path / "exps"
    code = cli_main(["search", str(path), "--storage", str(storage)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert fragment in err, err
    assert not storage.exists()


def test_missing_spec_file_and_experiment(tmp_path, capsys):
    assert cli_main(["search", str(tmp_path / "nope.yaml")]) == 2
    assert cli_main(["resume", str(tmp_path / "nothing")]) == 2
    assert cli_main(["export", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all("error" in line for line in err)


def test_bad_extend_value_is_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["resume", str(tmp_path), "--extend", "x"])
    assert exc.value.code == 2
    assert cli_main(["resume", str(tmp_path), "--extend", "-1"]) == 2
    assert "--extend" in capsys.readouterr().err.strip().splitlines()[-1]


def _conditional_spec(mode="optimize", **search):
    raw = _spec(
        **{
            "prune.ratio": {"choice": ["uniform", "mrs"]},
            "prune.mrs.temperature": {"choice": [0.5, 2.0]}
            if mode == "grid"
            else {"loguniform": [0.05, 20]},
            "finetune.method": {"choice": ["ce", "trades", "mart"]},
            "finetune.trades.beta": {"choice": [1.0, 6.0]}
            if mode == "grid"
            else {"uniform": [1, 8]},
            "search.mode": mode,
            **{f"search.{k}": v for k, v in search.items()},
        }
    )
    return parse_spec(raw, name="t", storage="/tmp/unused")


def test_grid_crosses_conditionals_only_where_they_apply(tmp_path):
    spec = _conditional_spec("grid", seeds=3)
    cells = grid_assignments(spec)
    # sparsity 2 x [uniform + mrs x 2 temperatures] x [ce + trades x 2 betas + mart]
    assert len(cells) == 2 * 3 * 4
    for cell in cells:
        assert ("prune.mrs.temperature" in cell) == (cell["prune.ratio"] == "mrs")
        assert ("finetune.trades.beta" in cell) == (cell["finetune.method"] == "trades")
    configs = grid_configs(spec, str(tmp_path))
    assert len(configs) == len(cells) * 3
    assert sorted({c["seed"] for c in configs}) == [0, 1, 2]
    keys = {yaml.safe_dump(c, sort_keys=True) for c in configs}
    assert len(keys) == len(configs)  # every cell x seed exactly once
    for config in configs:
        parse_trial_config(config)
        assert config["cache_dir"] == str(tmp_path)


def test_define_by_run_samples_conditionals_only_when_chosen(tmp_path):
    spec = _conditional_spec()
    space = SpaceFunction(spec, str(tmp_path))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        config = space(trial)["trial"]
        parse_trial_config(config)
        params = trial.params
        ratio, method = params["prune.ratio"], params["finetune.method"]
        seen.add((ratio, method))
        assert ("prune.mrs.temperature" in params) == (ratio == "mrs")
        assert ("finetune.trades.beta" in params) == (method == "trades")
        assert ("temperature" in config["prune"].get("mrs", {})) == (ratio == "mrs")
        assert ("trades" in config["finetune"]) == (method == "trades")
        study.tell(trial, 0.5)
    assert len(seen) == 6


def test_spec_resolution_and_defaults():
    spec = _conditional_spec()
    assert spec.search.scheduler.name == "asha" and spec.search.sampler == "tpe"
    assert (spec.resources.cpu, spec.resources.gpu) == (1.0, 0.0)
    grid = _conditional_spec("grid")
    assert grid.search.scheduler.name == "none"
    assert yaml.safe_load(spec.to_yaml())["name"] == "t"
    frac = parse_spec(_spec(resources={"cpu": 2, "gpu": 0.25}), name="t", storage="s3://b/x")
    assert frac.gpu == 0.25 and frac.storage == "s3://b/x"


def test_example_specs_are_valid():

    from search.demo import DEMO_SPEC
    from search.spec.parse import load_spec

    root = ROOT / "examples"
    assert (root / "demo-search.yaml").read_text() == DEMO_SPEC
    for path in sorted(root.glob("*search*.yaml")):
        load_spec(path, name="check")


def test_study_search_reopens_a_moved_journal(tmp_path):
    import pickle
    import shutil

    from search.run.study import open_storage
    from search.run.tune_internals import StudySearch, finalize_study

    spec = _conditional_spec()
    first = tmp_path / "a" / "study.journal"
    search = StudySearch(
        SpaceFunction(spec, str(tmp_path)),
        metric="robust_acc",
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=0),
        study_name="s",
        journal=first,
    )
    config = search.suggest("t1")
    assert "trial" in config and "prune.ratio" in config
    search.suggest("t2")
    blob = pickle.dumps(search)
    moved = tmp_path / "b" / "study.journal"
    moved.parent.mkdir()
    shutil.copy(first, moved)
    shutil.rmtree(first.parent)
    StudySearch.journal_override = str(moved)
    try:
        restored = pickle.loads(blob)
    finally:
        StudySearch.journal_override = None
    restored.on_trial_complete("t1", {"robust_acc": 0.5, "training_iteration": 1})
    study = optuna.load_study(study_name="s", storage=open_storage(moved))
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING]
    assert finalize_study(moved, "s") == 1  # t2 was asked but will never finish
    study = optuna.load_study(study_name="s", storage=open_storage(moved))
    assert study.trials[1].state == optuna.trial.TrialState.FAIL


def test_existing_experiment_and_unreachable_cluster_are_bad_input(tmp_path, capsys):
    import socket

    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(BASE))
    (tmp_path / "exps" / "taken").mkdir(parents=True)
    (tmp_path / "exps" / "taken" / "notes.txt").write_text("someone's")  # not a killed create
    args = ["search", str(path), "--storage", str(tmp_path / "exps")]
    assert cli_main([*args, "--name", "taken"]) == 2
    assert "already exists" in capsys.readouterr().err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert cli_main([*args, "--name", "new", "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot connect to Ray" in err[0]
    assert sorted(p.name for p in (tmp_path / "exps").iterdir()) == ["taken"]


def test_samplers_and_overrides(tmp_path):
    from search.run.study import make_sampler
    from search.spec.parse import load_spec

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(BASE))
    spec = load_spec(
        path,
        [
            "search.sampler=nsgaii",
            "prune.criterion={choice: [l1, l2]}",
            "search.objectives=[robust_acc:max, flops:min]",
            "search.scheduler=none",
        ],
        name="x",
    )
    assert spec.dist("prune.criterion").args == ("l1", "l2")
    assert isinstance(make_sampler(spec.search), optuna.samplers.NSGAIISampler)
    assert [str(o) for o in spec.search.objectives] == ["robust_acc:max", "flops:min"]
    kinds = {
        "tpe": optuna.samplers.TPESampler,
        "gp": optuna.samplers.GPSampler,
        "random": optuna.samplers.RandomSampler,
    }
    for name, cls in kinds.items():
        mode = "random" if name == "random" else "optimize"
        s = load_spec(path, [f"search.sampler={name}", f"search.mode={mode}"], name="x")
        assert isinstance(make_sampler(s.search), cls)
    stamped = load_spec(path)
    assert stamped.name.startswith("t-") and len(stamped.name) == len("t-20260101-000000")


def test_demo_fails_when_its_report_crashes(tmp_path):
    import io

    from search.demo import _report, demo_exit_code

    stream = io.StringIO()
    report_dir, failed = _report(str(tmp_path / "no-results"), str(tmp_path / "r"), stream)
    assert report_dir is None and failed, stream.getvalue()
    assert "report: failed" in stream.getvalue()
    assert demo_exit_code(0, report_failed=True) == 1
    assert demo_exit_code(0, report_failed=False) == 0
    assert demo_exit_code(130, report_failed=True) == 130
