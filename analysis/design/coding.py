"""A factor column as integer codes into ordered levels, and folding one column into another.

Numbers with many distinct values (a searched learning rate, a temperature) are binned into
quantile levels, since ANOVA and Shapley need levels; nulls ("not applicable") form the level
"n/a". Folding combines a parent with a column that only exists under some of its levels, so the
two cannot split one effect between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["NA", "Coded", "code_column", "combine", "fold"]

NA = "n/a"
#: Numeric columns with more distinct values than this are binned.
MAX_NUMERIC_LEVELS = 6
QUANTILE_BINS = 4


@dataclass(frozen=True, kw_only=True)
class Coded:
    """A column as integer codes into its ordered levels ("n/a" first when present)."""

    codes: np.ndarray
    levels: tuple[str, ...]
    binned: bool = False


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _compact(codes: np.ndarray, levels: list[str], binned: bool) -> Coded:
    used, codes = np.unique(codes, return_inverse=True)
    return Coded(
        codes=codes.reshape(-1).astype(np.int64),
        levels=tuple(levels[i] for i in used),
        binned=binned,
    )


def code_column(
    values: pd.Series, bins: int = QUANTILE_BINS, max_levels: int = MAX_NUMERIC_LEVELS
) -> Coded:
    """Levels of one factor column: strings as they are, numbers formatted, or binned into
    `bins` quantile levels when they take more than `max_levels` distinct values."""
    if not pd.api.types.is_numeric_dtype(values.dtype):
        codes, uniques = pd.factorize(values, sort=True)
        missing = bool((codes < 0).any())
        levels = ([NA] if missing else []) + [str(u) for u in uniques]
        return _compact(codes + 1 if missing else codes, levels, False)
    numeric = values.to_numpy(dtype=float, na_value=np.nan)
    finite = np.isfinite(numeric)
    missing = bool((~finite).any())
    distinct = np.unique(numeric[finite])
    codes = np.zeros(len(numeric), dtype=np.int64)
    binned = len(distinct) > max_levels
    if binned:
        edges = np.unique(np.quantile(numeric[finite], np.linspace(0, 1, bins + 1)))
        index = np.searchsorted(edges, numeric[finite], side="right") - 1
        index = np.clip(index, 0, len(edges) - 2)
        names = [f"{_fmt(edges[i])}-{_fmt(edges[i + 1])}" for i in range(len(edges) - 1)]
    else:
        index = np.searchsorted(distinct, numeric[finite])
        names = [_fmt(v) for v in distinct]
    codes[finite] = index + (1 if missing else 0)
    return _compact(codes, ([NA] if missing else []) + names, binned)


def combine(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of the pairs (first, second) and the distinct pair keys, in key order."""
    width = int(second.max()) + 1 if len(second) else 1
    keys, codes = np.unique(first * width + second, return_inverse=True)
    return codes.reshape(-1).astype(np.int64), keys


def fold(parent: Coded, nested: Coded, name: str) -> Coded | None:
    """Combine a parent with the column nested in it; None when the nested adds nothing."""
    width = len(nested.levels)
    keys, codes = np.unique(parent.codes * width + nested.codes, return_inverse=True)
    if len(keys) == len(np.unique(parent.codes)):
        return None
    levels = []
    for key in keys:
        p, n = divmod(int(key), width)
        level = nested.levels[n]
        levels.append(parent.levels[p] if level == NA else f"{parent.levels[p]} ({name}={level})")
    return Coded(
        codes=codes.reshape(-1).astype(np.int64),
        levels=tuple(levels),
        binned=parent.binned or nested.binned,
    )
