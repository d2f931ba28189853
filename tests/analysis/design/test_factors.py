"""Factors from trial columns: constant, nested, continuous and null levels."""

from __future__ import annotations

import pandas as pd

from analysis.design.factorial import NA, build_design, code_column
from tests.support.analysis_tables import (
    PLANTED,
    planted_trials,
)


def test_design_balanced_grid_and_constant_factors():
    design = build_design(planted_trials(PLANTED, seeds=3))
    assert design.balanced and design.replicates == 3
    assert [f.name for f in design.factors] == [
        "criterion",
        "ratio_rule",
        "sparsity_target",
        "finetune_method",
    ]
    assert design.constant["dataset"] == "digits"
    # temperature (mrs only) and beta (trades/mart only) take one value each: not factors
    assert any("determined by ratio rule" in n for n in design.notes)


def test_nested_and_continuous_factors_are_folded_and_binned():
    trials = planted_trials(PLANTED, balanced=False, n=800, search=True)
    design = build_design(trials)
    names = [f.name for f in design.factors]
    assert "ratio_rule+temperature" in names
    assert "temperature" not in names and "beta" not in names
    # the fine-tuning recipe only applies when something is fine-tuned: folded into the method
    assert "finetune_method+finetune_epochs+lr+beta" in names and "lr" not in names
    method = design.factors[names.index("finetune_method+finetune_epochs+lr+beta")]
    assert method.binned and any("lr=" in level for level in method.levels)
    ratio = design.factors[names.index("ratio_rule+temperature")]
    assert "uniform" in ratio.levels
    assert any(level.startswith("mrs (temperature=") for level in ratio.levels)
    assert not design.balanced
    assert any("split at its median" in n for n in design.notes)


def test_code_column_null_is_its_own_level():
    coded = code_column(pd.Series([None, 1.0, 2.0, None]))
    assert coded.levels == (NA, "1", "2")
    assert list(coded.codes) == [0, 1, 2, 0]
