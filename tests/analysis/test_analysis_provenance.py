"""The report names the attack behind its robustness numbers."""

from __future__ import annotations

import json

from analysis.provenance import describe_attacks
from robprune.io.results_schema import TRIALS_SCHEMA, table_from_rows, write_table_atomic


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
