"""Which column a table or figure picks its "best" trials on: the validation metric.

The search optimised the validation split; picking on the test split would select on the
numbers the report then shows as unbiased. Every "best" in the report (the best-configurations
table, the learning curves, the per-layer panels, the Pareto front) comes from here, so they
agree.
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["selection_column"]


def selection_column(trials: pd.DataFrame, response: str) -> str:
    """`val_<response>` when the table has it; the response itself when it already is a
    validation metric (the per-epoch headline of an early-stopped search); else the response
    (the caller says that no validation metric was recorded)."""
    if re.fullmatch(r"epoch\d+_val_\w+", response) or response.startswith("val_"):
        return response
    column = f"val_{response}"
    if column in trials and trials[column].notna().any():
        return column
    return response
