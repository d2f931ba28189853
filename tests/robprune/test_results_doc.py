"""The repository documents itself: every results column described in its Arrow schema and in
docs/results.md, docs/architecture.md naming every package, and no pointer outside.

Derived from the schema: a new column needs a description where it is declared
(`robprune/io/results_schema.py`), then `python -m robprune.io.results_doc`.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pyarrow.parquet as pq

from robprune.io.results_doc import BEGIN, END, column_tables, describe_field
from robprune.io.results_schema import (
    SCHEMAS,
    TRIAL_STATES,
    table_from_rows,
    write_table_atomic,
)
from tests.support.analysis_tables import epochs_for, planted_trials, write_experiment
from tests.support.paths import ROOT


def test_every_column_is_described_in_the_schema():
    for name, schema in SCHEMAS.items():
        for field in schema:
            d = describe_field(field)
            assert len(d["description"]) > 8, (name, field.name)
            if field.name.endswith("_acc"):  # an accuracy says its unit, split and attack
                assert d["unit"] and d["split"] and d["attack"], (name, field.name, d)
            if field.name.startswith("val_") and field.name.endswith("_acc"):
                assert d["split"] == "validation", (name, field.name)
    epochs = SCHEMAS["epochs"].names
    assert "val_robust_acc" in epochs and "robust_acc" not in epochs  # cannot be confused
    assert {"robust_attack", "val_robust_attack", "pgd_attack"} <= set(SCHEMAS["trials"].names)


def test_docs_results_md_is_the_schema():
    text = (ROOT / "docs" / "results.md").read_text()
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert generated == column_tables().strip(), (
        "docs/results.md differs from the schema: run `python -m robprune.io.results_doc`"
    )
    for name, schema in SCHEMAS.items():
        for field in schema:
            assert f"| `{field.name}` | {field.type} |" in generated, (name, field.name)
    for state in TRIAL_STATES:
        assert f"| `{state}` |" in generated


def test_the_parquet_files_carry_the_descriptions(tmp_path):
    path = write_table_atomic(
        table_from_rows([{"trial_id": "a", "status": "TERMINATED"}], SCHEMAS["trials"]),
        tmp_path / "trials.parquet",
    )
    field = pq.read_schema(path).field("robust_acc")
    assert describe_field(field) == describe_field(SCHEMAS["trials"].field("robust_acc"))
    assert describe_field(field)["split"] == "test"


def test_an_epochs_table_written_before_the_rename_still_reads(tmp_path):
    from analysis.read.load import load_results

    trials = planted_trials({"finetune_method": 0.6}, seeds=2, n=12)
    epochs = epochs_for(trials, epochs=3)
    results = write_experiment(tmp_path / "new", trials, epochs=epochs)
    old = epochs.rename(columns={"val_clean_acc": "clean_acc", "val_robust_acc": "robust_acc"})
    old_dir = tmp_path / "old" / "results"
    old_dir.mkdir(parents=True)
    old.to_parquet(old_dir / "epochs.parquet", index=False)
    pq.write_table(pq.read_table(results / "trials.parquet"), old_dir / "trials.parquet")
    new, legacy = load_results([results]).epochs, load_results([old_dir]).epochs
    assert np.allclose(legacy["val_robust_acc"], new["val_robust_acc"])
    assert "robust_acc" not in legacy.columns


def test_architecture_names_every_package_and_sub_package():
    text = (ROOT / "docs" / "architecture.md").read_text()
    for package in ("robprune", "search", "cluster", "analysis", "cli"):
        assert f"`{package}/`" in text, package
    for sub in sorted((ROOT / "search").iterdir()):
        if (sub / "__init__.py").is_file():
            assert f"`{sub.name}/`" in text, sub.name
    for rel in (
        "experiment.json",
        "status.json",
        "driver.json",
        "optuna/journal.log",
        "tune/RUN/",
    ):
        assert f"`{rel}`" in text, rel


def test_nothing_points_outside_the_repository():
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    outside = re.compile(r"\.\./shared|DESIGN\.md|DESIGN §|ENVIRONMENT\.md")
    found = [
        f
        for f in files
        if f != "CHANGELOG.md"  # history may name what was
        and f.endswith((".py", ".md", ".yaml", ".toml", "Makefile"))
        and (ROOT / f).is_file()
        and outside.search((ROOT / f).read_text(errors="replace"))
        and f != "tests/robprune/test_results_doc.py"
    ]
    assert found == []
