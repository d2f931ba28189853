"""The finalists stage: a real digits search on local Ray, then the official AutoAttack on the
best trials from their saved pruned models; resumable, exported, reported; bad input."""

from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest
import ray

from cli import main as cli_main
from robprune.errors import BadInput
from search.finalists.choose import select_finalists
from search.finalists.evaluate import run_finalists
from search.finalists.store import FINALISTS_DIR
from search.spec.parse import parse_spec
from tests.support.trials import fast_trial


def test_select_top_k_by_validation_and_pareto_front():
    rows = [
        {"trial_id": "a", "status": "TERMINATED", "val_robust_acc": 0.5, "val_clean_acc": 0.9},
        {"trial_id": "b", "status": "TERMINATED", "val_robust_acc": 0.7, "val_clean_acc": 0.8},
        {"trial_id": "c", "status": "TERMINATED", "val_robust_acc": 0.6, "val_clean_acc": 0.7},
        {"trial_id": "d", "status": "ERROR", "val_robust_acc": None, "val_clean_acc": None},
        {"trial_id": "e", "status": "TERMINATED", "val_robust_acc": 0.7, "val_clean_acc": 0.8},
    ]
    # the validation columns decide, never the test split's robust_acc
    assert select_finalists(rows, [("robust_acc", "max")], 2) == ["b", "e"]
    assert select_finalists(rows, [("robust_acc", "max")], 10) == ["b", "e", "c", "a"]
    both = [("robust_acc", "max"), ("clean_acc", "max")]
    assert select_finalists(rows, both, 5) == ["b", "e", "a"]  # c is dominated by b
    assert select_finalists(rows, both, 1) == ["b"]  # the front, capped at K
    assert select_finalists(rows, [("params", "min")], 1) == []  # no such column recorded


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    from search.run.runner import run_search

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    storage = tmp_path_factory.mktemp("finalists")
    raw = fast_trial(
        "unused",
        data={"dataset": "digits", "train_limit": 400},
        dense={"epochs": 3},
        prune={"criterion": {"choice": ["l1", "random", "l2"]}},
        finetune={"method": "ce", "epochs": 1},
        eval={"autoattack": "finalists", "finalists": 2, "autoattack_n": 24, "test_limit": 100},
        search={"mode": "grid", "max_concurrent": 2, "objectives": ["robust_acc:max"]},
    )
    raw.pop("cache_dir")
    spec = parse_spec(raw, name="fin", storage=str(storage))
    stream = io.StringIO()
    outcome = run_search(spec, stream=stream)
    yield spec, outcome, stream.getvalue()
    ray.shutdown()


def _trials(outcome) -> list[dict]:
    return pq.read_table(f"{outcome.experiment.location}/results/trials.parquet").to_pylist()


def test_search_ends_with_exactly_k_finalists(searched):
    _, outcome, text = searched
    assert outcome.completed == 3 and outcome.exit_code == 0
    rows = _trials(outcome)
    finalists = sorted((r for r in rows if r["finalist"]), key=lambda r: r["finalist_rank"])
    assert len(finalists) == 2 and sum(not r["finalist"] for r in rows) == 1
    best = sorted(rows, key=lambda r: (-r["val_robust_acc"], r["trial_id"]))[:2]
    assert [r["trial_id"] for r in finalists] == [r["trial_id"] for r in best]
    assert [r["finalist_rank"] for r in finalists] == [1, 2]
    folder = outcome.experiment.work_dir / FINALISTS_DIR
    selection = json.loads((folder / "selection.json").read_text())["trial_ids"]
    assert selection == [r["trial_id"] for r in finalists]
    for r in finalists:
        record = json.loads((folder / f"{r['trial_id']}.json").read_text())["metrics"]
        _check_finalist_numbers(r, record)
    other = next(r for r in rows if not r["finalist"])
    assert other["autoattack_acc"] is None and other["final_clean_acc"] is None
    assert "finalists (full test split):" in text and "AutoAttack (standard, official)" in text
    assert "(on 24 test images)" in text  # every AutoAttack number says on how many images


def _counted(value: float, n: int) -> bool:
    """An accuracy measured on n examples is a whole number of them."""
    return abs(value * n - round(value * n)) < 1e-6


def _check_finalist_numbers(r: dict, record: dict) -> None:
    """The finalist's numbers are measurements: counts of examples, ordered as attacks are."""
    test_n, aa_n = r["final_test_size"], r["autoattack_n"]
    assert test_n == 359  # the full test split, not eval.test_limit
    assert aa_n == 24 and record["check_examples"] == 24  # eval.autoattack_n, both checks
    assert r["autoattack_label"] == "AutoAttack (standard, official)"
    attacks = json.loads(r["final_attacks_json"])
    assert {"fgsm", "pgd5", "cw5", "apgd_ce", "apgd_t"} <= set(attacks)
    clean = r["final_clean_acc"]
    assert 0.1 < clean <= 1, clean  # above chance (ten classes)
    ours = {
        "fgsm": r["final_fgsm_acc"],
        "pgd": r["final_pgd_acc"],
        "cw": r["final_cw_acc"],
        "apgd": r["final_apgd_acc"],
        "robust": r["final_robust_acc"],
    }
    for name, acc in [*ours.items(), ("clean", clean), *attacks.items()]:
        assert 0 <= acc <= 1 and _counted(acc, test_n), (name, acc)
    for name, acc in ours.items():
        assert acc <= clean + 1e-9, (name, acc, clean)  # an attack never adds correct answers
    assert r["final_pgd_acc"] == attacks["pgd5"]
    # our APGD column is the per-example worst case over APGD-CE and APGD-T
    assert r["final_apgd_acc"] <= min(attacks["apgd_ce"], attacks["apgd_t"]) + 1e-9
    assert r["final_apgd_acc"] >= attacks["apgd_ce"] + attacks["apgd_t"] - 1 - 1e-9
    aa = r["autoattack_acc"]
    assert 0 <= aa <= clean and _counted(aa, aa_n), aa
    # AutoAttack's stages are cumulative (logged with two decimals) and end at its accuracy
    stages = list(record["autoattack_stages"].values())
    assert stages and stages == sorted(stages, reverse=True), stages
    assert abs(stages[-1] - aa) <= 0.005, (stages, aa)
    # on the same first 24 examples AutoAttack is at least as strong as PGD-5 and Square alone
    # (one example of slack for their different random starts)
    assert aa <= record["check_pgd_acc"] + 1 / aa_n, (aa, record["check_pgd_acc"])
    assert aa <= r["square_acc"] + 1 / aa_n and _counted(r["square_acc"], aa_n)
    # and not weaker than our APGD on the full split beyond the 24-example sampling error
    assert aa <= r["final_apgd_acc"] + 0.2, (aa, r["final_apgd_acc"])
    sweep = [point["accuracy"] for point in record["eps_sweep"]]
    at_eps = [p["accuracy"] for p in record["eps_sweep"] if p.get("factor") == 1.0]
    assert at_eps == [record["check_pgd_acc"]], (at_eps, record["check_pgd_acc"])
    assert sweep == sorted(sweep, reverse=True), sweep  # from eps = 0 (clean) to unbounded
    assert record["eps_sweep"][0]["epsilon"] == 0 and sweep[0] >= record["check_pgd_acc"]
    assert sweep[-1] == 0 and record["eps_sweep"][-1]["unbounded"]
    flags = json.loads(r["masking_flags_json"])
    assert all(f["meaning"] and f["code"] for f in flags)
    assert "robust_above_clean" not in {f["code"] for f in flags}


def test_finalize_is_resumable_and_reported(searched, tmp_path, capsys):
    spec, outcome, _ = searched
    exp = outcome.experiment
    folder = exp.work_dir / FINALISTS_DIR
    first, second = json.loads((folder / "selection.json").read_text())["trial_ids"]
    kept = (folder / f"{first}.json").stat().st_mtime_ns
    (folder / f"{second}.json").unlink()  # as if the driver died before the second finished
    stream = io.StringIO()
    chosen = run_finalists(
        exp, top=2, objectives=[("robust_acc", "max")], cpu=1, gpu=0, stream=stream
    )
    assert chosen == [first, second]
    assert "1 already evaluated" in stream.getvalue()
    assert (folder / f"{first}.json").stat().st_mtime_ns == kept  # not redone
    assert (folder / f"{second}.json").is_file()
    assert cli_main(["report", f"{exp.location}/results", "-o", str(tmp_path / "r")]) == 0
    report = (tmp_path / "r" / "report.md").read_text()
    assert "## Finalists" in report and "AutoAttack (standard, official)" in report
    assert first in report and second in report
    with pytest.raises(BadInput, match=r"^eval.finalists: 5 finalists asked, .* only 3"):
        run_finalists(exp, top=5, objectives=[("robust_acc", "max")], cpu=1, gpu=0)
    capsys.readouterr()
    assert cli_main(["finalize", exp.location, "--attacks", "pgd0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robprune finalize: error: --attacks:") and "\n" not in err


@pytest.mark.parametrize(
    ("eval_section", "expected"),
    [
        (
            {"autoattack": "finalists", "finalists": 4},
            "eval.finalists: 4 is more than the 3 trials this search runs",
        ),
        ({"autoattack": {"choice": ["none", "standard"]}}, "eval.autoattack: must be a fixed"),
        ({"autoattack": "al"}, "eval.autoattack: unknown 'al'; allowed: none, standard"),
    ],
)
def test_search_bad_finalists_input_is_exit_2(tmp_path, capsys, eval_section, expected):
    import yaml

    raw = fast_trial(
        "unused",
        prune={"criterion": {"choice": ["l1", "random", "l2"]}},
        search={"mode": "grid"},
        eval=eval_section,
    )
    raw.pop("cache_dir")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    code = cli_main(["search", str(tmp_path / "spec.yaml"), "--storage", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "x").exists()


def test_report_tables_of_finalists_and_flags():
    import pandas as pd

    from analysis.render.finalists_table import finalists_frame, flag_summary
    from robprune.evaluation.masking import FLAG_MEANINGS

    flag = {
        "code": "square_beats_pgd",
        "detail": "x",
        "meaning": FLAG_MEANINGS["square_beats_pgd"],
    }
    trials = pd.DataFrame(
        {
            "experiment": ["e", "e", "e"],
            "trial_id": ["a", "b", "c"],
            "finalist": [1.0, 1.0, 0.0],
            "finalist_rank": [2.0, 1.0, None],
            "autoattack_label": ["AutoAttack (standard, official)"] * 2 + [None],
            "autoattack_acc": [0.4, 0.5, None],
            "final_clean_acc": [0.9, 0.8, None],
            "masking_flags_json": [json.dumps([flag]), "[]", None],
        }
    )
    frame = finalists_frame(trials)
    assert list(frame["trial"]) == ["b", "a"] and list(frame["rank"]) == [1, 2]
    assert list(frame["AutoAttack (standard, official)"]) == [0.5, 0.4]
    assert list(frame["flags"]) == ["none", "square_beats_pgd"]
    assert flag_summary(trials) == [f"square_beats_pgd: 1 of 3 trials. {flag['meaning']}"]
    assert isinstance(finalists_frame(trials.drop(columns=["finalist"])), str)
