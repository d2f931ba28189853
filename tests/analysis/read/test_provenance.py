"""The report names the attack behind its robustness numbers and an adaptive sampler."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from analysis.document.build import build_report
from analysis.document.layout import blocks
from analysis.read.load import load_results
from analysis.read.provenance import describe_attacks
from analysis.render.markdown import render_markdown
from robprune.io.results_schema import TRIALS_SCHEMA, table_from_rows, write_table_atomic
from tests.support.analysis_tables import planted_trials, write_experiment


def test_primary_attack_is_described_per_source(tmp_path):
    attack = {
        "name": "pgd20",
        "norm": "linf",
        "epsilon": 8 / 255,
        "steps": 20,
        "step_size": 2 / 255,
        "restarts": 1,
    }
    row = {
        "trial_id": "a",
        "status": "TERMINATED",
        "config_json": json.dumps({"eval": {"primary": "pgd20"}}),
        "attack_config_json": json.dumps({"pgd20": attack}),
    }
    a = write_table_atomic(table_from_rows([row], TRIALS_SCHEMA), tmp_path / "a.parquet")
    other = dict(
        row,
        config_json=json.dumps({"eval": {"primary": "fgsm"}}),
        attack_config_json=json.dumps({"fgsm": {**attack, "name": "fgsm", "steps": 1}}),
    )
    b = write_table_atomic(table_from_rows([other], TRIALS_SCHEMA), tmp_path / "b.parquet")
    empty = write_table_atomic(
        table_from_rows([{"trial_id": "x"}], TRIALS_SCHEMA), tmp_path / "c.parquet"
    )
    described = describe_attacks([a, a, b, empty])
    assert described == [
        "pgd20 (linf, eps=0.03137, 20 steps, step 0.007843)",
        "fgsm (linf, eps=0.03137, 1 steps, step 0.007843)",
    ]


def test_provenance_is_read_with_the_tables_and_rendering_opens_no_file(tmp_path, monkeypatch):
    """The loaded `ResultSet` carries the attacks; laying out the report reads nothing."""
    trials = planted_trials({"criterion": 0.3, "finetune_method": 0.2}, seeds=1)
    trials["config_json"] = json.dumps({"eval": {"primary": "pgd20"}})
    trials["attack_config_json"] = json.dumps({"pgd20": {"norm": "linf", "epsilon": 8 / 255}})
    report = build_report([write_experiment(tmp_path, trials)], resamples=20, draw=False)
    assert report.results.attacks == ["pgd20 (linf, eps=0.03137)"]

    def no_reading(*args, **kwargs):
        raise AssertionError("the report's layout opened a file")

    monkeypatch.setattr(pq, "ParquetFile", no_reading)
    monkeypatch.setattr(pq, "read_table", no_reading)
    monkeypatch.setattr(Path, "open", no_reading)
    text = render_markdown(blocks(report))
    assert "under pgd20 (linf, eps=0.03137);" in text


def test_adaptive_samplers_are_read_from_the_spec_with_the_tables(tmp_path):
    trials = planted_trials({"criterion": 0.3}, seeds=1)
    searched = write_experiment(tmp_path / "tpe", trials)
    (searched.parent / "spec.yaml").write_text("search:\n  mode: optimize\n  sampler: tpe\n")
    grid = write_experiment(tmp_path / "grid", trials)
    (grid.parent / "spec.yaml").write_text("search:\n  mode: grid\n")
    assert load_results([searched, grid]).samplers == ("tpe",)
    assert load_results([grid]).samplers == ()
