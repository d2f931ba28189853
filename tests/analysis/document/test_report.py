"""`robprune report` end to end: files, bad inputs, Optuna cross-check, headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cli import main
from tests.support.analysis_tables import (
    epochs_for,
    layers_for,
    planted_trials,
    write_experiment,
    write_raw_trials,
)
from tests.support.paths import ROOT
from tests.support.requirements import require

PLANTED = {"finetune_method": 0.60, "criterion": 0.05, "sparsity_target": 0.1}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    trials = planted_trials(PLANTED, seeds=3, failed=4)
    root = tmp_path_factory.mktemp("exp") / "grid"
    return write_experiment(root, trials, epochs=epochs_for(trials), layers=layers_for(trials))


@pytest.fixture(scope="module")
def report_dir(experiment, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["report", str(experiment), "-o", str(out)]) == 0
    return out


def _run(args, capsys) -> tuple[int, str, str]:
    code = main(["report", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_report_files(report_dir):
    for name in (
        "index.html",
        "report.md",
        "best_configs.csv",
        "factors.csv",
        "factor_levels.csv",
        "excluded.csv",
        "paper_view.csv",
        "ratio_rule.csv",
    ):
        assert (report_dir / name).is_file(), name
    for figure in ("sparsity", "shares", "pareto", "layers", "curves"):
        assert (report_dir / f"{figure}.png").stat().st_size > 5000, figure
        assert len(pd.read_csv(report_dir / f"{figure}.csv")) > 0, figure
    excluded = pd.read_csv(report_dir / "excluded.csv")
    assert excluded.iloc[0].tolist() == ["status ERROR", 4]


def test_report_markdown_and_html_agree(report_dir):
    markdown = (report_dir / "report.md").read_text()
    html = (report_dir / "index.html").read_text()
    assert markdown.startswith("# Ablation report: what drives robust accuracy?")
    assert "The fine-tuning method dominates robust accuracy:" in markdown
    assert "The fine-tuning method dominates robust accuracy:" in html
    for figure in ("sparsity", "shares", "pareto", "layers", "curves"):
        assert f"]({figure}.png)" in markdown
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(images) == 5 and all(src.startswith("data:image/png;base64,") for src in images)
    assert "http://" not in html and "https://" not in html  # self-contained
    assert "356 completed" in markdown and "excluded: 4 ERROR" in markdown


def test_report_states_skipped_figures_and_single_levels(tmp_path, capsys):
    trials = planted_trials(PLANTED, seeds=2)
    trials = trials[trials["criterion"] == "l1"]  # one criterion only; no epochs or layers
    code, out, _ = _run([write_experiment(tmp_path / "x", trials), "-o", tmp_path / "r"], capsys)
    assert code == 0
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "no epochs.parquet was found" in markdown
    assert "no layers.parquet was found" in markdown
    cannot = "Whether the criterion or the fine-tuning decides robust accuracy cannot be answered"
    assert f"{cannot} from these trials: the criterion took a single value (l1); the " in markdown
    assert "the fine-tuning method (" in markdown and ") is distinguishable from noise" in markdown
    assert "the criterion takes a single value, so there is no spread to compare" in markdown
    assert not (tmp_path / "r" / "curves.png").exists()


def test_nothing_varies_still_reports_why(tmp_path, capsys):
    trials = planted_trials(PLANTED, seeds=3).query(
        "criterion == 'l1' and finetune_method == 'ce' and ratio_rule == 'mrs' "
        "and sparsity_target == 0.5"
    )
    code, out, _ = _run([write_experiment(tmp_path / "x", trials), "-o", tmp_path / "r"], capsys)
    assert code == 0
    assert out.startswith(
        "Whether the criterion or the fine-tuning decides robust accuracy cannot be answered "
        "from these trials: the fine-tuning method took a single value (ce); the criterion took "
        "a single value (l1)."
    )
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "no factor takes more than one value among the analysed trials" in markdown


def test_nan_metrics_are_excluded_and_counted(tmp_path, capsys):
    trials = planted_trials(PLANTED, seeds=2)
    trials.loc[trials.index[:10], "robust_acc"] = np.nan
    code, _, _ = _run([write_experiment(tmp_path / "x", trials), "-o", tmp_path / "r"], capsys)
    assert code == 0
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "10 completed trials have no finite robust accuracy" in markdown
    all_nan = trials.assign(robust_acc=np.nan)
    code, _, err = _run([write_experiment(tmp_path / "y", all_nan), "-o", tmp_path / "s"], capsys)
    assert code == 2
    assert err.strip() == (
        "robprune report: error: robust_acc is missing or not a finite number in all 240 "
        "completed trials"
    )


def _bad_tables(tmp_path) -> dict[str, Path]:
    base = planted_trials(PLANTED, seeds=1)
    failed = base.assign(status="ERROR")
    cases = {
        "empty": write_experiment(tmp_path / "empty", base.iloc[:0]),
        "all failed": write_experiment(tmp_path / "failed", failed),
    }
    (tmp_path / "typed").mkdir()
    cases["wrong types"] = write_raw_trials(
        tmp_path / "typed", base.assign(sparsity_target=base["sparsity_target"].astype(str))
    )
    (tmp_path / "missing").mkdir()
    cases["missing columns"] = write_raw_trials(
        tmp_path / "missing", base.drop(columns=["status", "seed", "cw_acc"])
    )
    cases["no such path"] = tmp_path / "does-not-exist"
    return cases


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "the trials table is empty"),
        ("all failed", "all 120 trials failed or did not finish (ERROR 120)"),
        ("wrong types", "wrong types: sparsity_target is string (expected double)"),
        ("missing columns", "missing columns: status"),
        ("no such path", "no such file or directory"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(tmp_path, capsys, case, message):
    path = _bad_tables(tmp_path)[case]
    code, out, err = _run([path, "-o", tmp_path / "r"], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("robprune report: error: ")
    assert message in err
    assert "Traceback" not in err


def test_bad_input_names_only_the_required_columns(tmp_path, capsys):
    path = _bad_tables(tmp_path)["missing columns"]
    _, _, err = _run([path, "-o", tmp_path / "r"], capsys)
    assert err.strip().endswith("missing columns: status")  # seed, cw_acc are optional


def _partial_table(trials: pd.DataFrame, dropped: list[str]) -> pa.Table:
    """What an earlier robprune (or another tool) wrote: only some of today's columns."""
    kept = [c for c in trials.columns if c not in dropped]
    return pa.Table.from_pandas(trials[kept], preserve_index=False)


def test_report_on_a_table_without_optional_metric_columns(tmp_path, capsys):
    trials = planted_trials(PLANTED, seeds=2)
    dropped = ["cw_acc", "apgd_acc", "autoattack_acc", "val_clean_acc", "val_robust_acc"]
    dropped += ["params", "flops", "flops_dense", "experiment", "trial_id", "error"]
    path = tmp_path / "old" / "results" / "trials.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(_partial_table(trials, dropped), path)
    assert set(dropped).isdisjoint(pq.read_schema(path).names)
    code, out, err = _run([path.parent, "-o", tmp_path / "r"], capsys)
    assert code == 0, err
    assert out.startswith("The fine-tuning method dominates robust accuracy:")
    markdown = (tmp_path / "r" / "report.md").read_text()
    absent = re.search(r"Columns absent from the trials table[^:]*: ([^.]*)\.", markdown)
    assert absent, "the report does not say which columns were absent"
    assert set(absent.group(1).split(", ")) == set(dropped)
    best = pd.read_csv(tmp_path / "r" / "best_configs.csv")
    assert best["trial_id"].str.fullmatch(r"row\d+").all()  # ids made up for the rows
    assert best["experiment"].eq("old").all()  # named after the experiment folder
    assert "FLOPs were not recorded" in markdown


def test_report_on_a_table_without_some_factor_columns(tmp_path, capsys):
    trials = planted_trials(PLANTED, seeds=2)
    path = tmp_path / "t.parquet"
    pq.write_table(_partial_table(trials, ["criterion", "temperature", "clean_acc"]), path)
    code, out, err = _run([path, "-o", tmp_path / "r"], capsys)
    assert code == 0, err
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "cannot be answered from these trials: the criterion is not recorded" in markdown
    assert "Clean-accuracy decomposition: the trials table has no clean_acc." in markdown
    factors = pd.read_csv(tmp_path / "r" / "factors.csv")
    assert "criterion" not in set(factors["factor"])  # not a factor with one level "n/a"
    assert "finetune_method" in set(factors["factor"])


def test_unknown_response_is_bad_input(experiment, tmp_path, capsys):
    code, _, err = _run([experiment, "--response", "robustness", "-o", tmp_path], capsys)
    assert code == 2 and "--response 'robustness' is not a metric column" in err


def test_several_experiments_merged_and_clean_response(tmp_path, capsys):
    a = write_experiment(tmp_path / "a", planted_trials(PLANTED, seeds=1, experiment="a"))
    b = write_experiment(tmp_path / "b", planted_trials(PLANTED, seeds=1, experiment="b", rng=1))
    code, out, _ = _run([a, b, "--response", "clean_acc", "-o", tmp_path / "r"], capsys)
    assert code == 0
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "240 trials from 2 source(s)" in markdown
    assert "what drives clean accuracy?" in markdown


def test_report_imports_neither_torch_nor_ray(experiment, tmp_path):
    code = (
        "import sys; from cli import main; "
        f"rc = main(['report', {str(experiment)!r}, '-o', {str(tmp_path)!r}]); "
        "bad = [m for m in ('torch', 'ray', 'optuna') if m in sys.modules]; "
        "print(rc, bad)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_ped_anova_cross_check(tmp_path, capsys, backend):
    trials = planted_trials(PLANTED, balanced=False, n=300, search=True)
    root = tmp_path / "search"
    results = write_experiment(root, trials)
    (root / "optuna").mkdir()
    if backend == "sqlite":
        storage = f"sqlite:///{root / 'optuna' / 'study.db'}"
    else:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(str(root / "optuna" / "journal.log")))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name="s",
        storage=storage,
        directions=["maximize", "maximize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # set_metric_names is "experimental"
        study.set_metric_names(["robust_acc", "clean_acc"])
    effect = {"ce": 0.3, "pgd_at": 0.5, "trades": 0.6, "mart": 0.45}
    small = {"l1": 0.01, "l2": 0.0, "random": -0.01}

    def objective(trial):
        method = trial.suggest_categorical("finetune.method", list(effect))
        criterion = trial.suggest_categorical("prune.criterion", list(small))
        trial.suggest_float("finetune.lr", 1e-3, 0.1, log=True)  # no effect
        return effect[method] + small[criterion], 0.9 - effect[method]

    study.optimize(objective, n_trials=60)
    code, _, _ = _run([results, "-o", tmp_path / "r"], capsys)
    assert code == 0
    ped = pd.read_csv(tmp_path / "r" / "ped_anova.csv")
    assert set(ped["factor"]) == {"finetune_method", "criterion", "lr"}
    top = ped.sort_values("importance", ascending=False).iloc[0]
    assert top["factor"] == "finetune_method"
    assert "Cross-check: Optuna PED-ANOVA" in (tmp_path / "r" / "report.md").read_text()


def test_html_renders_in_headless_chromium(report_dir, tmp_path):
    require(CHROMIUM, "chromium is not installed (apt-get install chromium; .ci/run does)")
    flags = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = (report_dir / "index.html").resolve().as_uri()
    dom = subprocess.run(
        [*flags, "--window-size=1280,2000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    status = re.search(
        r'id="render-status"[^>]*data-images="(\d+)"[^>]*data-loaded="(\d+)"', dom.stdout
    )
    assert status, "the page's load script did not run"
    assert status.groups() == ("5", "5")
    widths = [int(w) for w in re.findall(r'data-natural-width="(\d+)"', dom.stdout)]
    assert len(widths) == 5 and min(widths) > 100
    # wide tables scroll inside the page: nothing is wider than a 1280-px window
    page = re.search(r'data-page-width="(\d+)"[^>]*data-view-width="(\d+)"', dom.stdout)
    assert page, "the page's load script did not record its width"
    assert int(page.group(2)) == 1280 and int(page.group(1)) <= 1280, page.groups()
    # the count is of the figures drawn, and says how many were not
    assert "figures rendered: 5 of the 5 drawn; 1 not drawn" in dom.stdout
    assert "The fine-tuning method dominates robust accuracy:" in dom.stdout
    shot = tmp_path / "page.png"
    done = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1200,3000", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1200, 3000)
        colours = image.convert("RGB").resize((120, 300)).getcolors(maxcolors=1 << 16)
    assert colours is not None and len(colours) > 50  # text, figures: not a blank page
