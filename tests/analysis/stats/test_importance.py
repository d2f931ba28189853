"""PED-ANOVA importances are listed in the same order on every run."""

from __future__ import annotations

import sys

import optuna

from analysis.read.load import Source
from analysis.stats import importance


def test_equal_importances_are_listed_by_name(tmp_path, monkeypatch):
    """Optuna returns tied importances in the order a set of names iterates, which changes
    with the process's hash seed; the table must not."""
    root = tmp_path / "search"
    (root / "optuna").mkdir(parents=True)
    journal = optuna.storages.journal.JournalFileBackend(str(root / "optuna" / "journal.log"))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=optuna.storages.JournalStorage(journal))
    study.optimize(lambda t: t.suggest_float("b", 0, 1) + t.suggest_float("a", 0, 1), 12)
    tied = {"prune.sparsity": 0.4, "prune.bn_recalibration": 0.4, "seed": 0.2}
    assert optuna.importance.PedAnovaImportanceEvaluator  # Optuna's lazy module, loaded
    for module in (optuna.importance, sys.modules["optuna.importance"]):
        monkeypatch.setattr(module, "get_param_importances", lambda *a, **k: tied)
    source = Source(
        trials=root / "results" / "trials.parquet", epochs=None, layers=None, experiment_dir=root
    )
    found = importance.ped_anova([source], "robust_acc")
    assert found is not None
    assert list(found[0]["param"]) == ["prune.bn_recalibration", "prune.sparsity", "seed"]
