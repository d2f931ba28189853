"""From trial rows to a factorial design: which factors vary, their levels, and balance.

Decisions made here, each stated in the report:
- a factor is a column of `FACTOR_COLUMNS` with more than one level among the analysed trials;
  `seed` is a replicate, never a factor; a factor column absent from the tables is
  "unrecorded", not a factor with one level;
- numeric columns with many distinct values (a searched learning rate, a temperature) are
  binned into quantile levels, since ANOVA and Shapley need levels;
- null `temperature` / `beta` mean "not applicable" and form the level "n/a"; when their
  parent (`ratio_rule`, `finetune_method`) varies too they are nested in it, so they are folded
  into the parent: a temperature only exists for the MRS rule, and splitting the rule's effect
  between two aliased columns would misattribute it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from robprune.config.factors import FACTOR_COLUMNS, FACTORS, label

__all__ = [
    "NA",
    "NESTED",
    "Design",
    "Factor",
    "Coded",
    "build_design",
    "code_column",
]

NA = "n/a"
#: Nested column -> the factor it only exists under (from robprune.config.factors' conditions).
NESTED = {f.column: f.parent for f in FACTORS if f.parent is not None}
#: Numeric columns with more distinct values than this are binned.
MAX_NUMERIC_LEVELS = 6
QUANTILE_BINS = 4


@dataclass(frozen=True, kw_only=True)
class Factor:
    """One factor of the analysis; `columns` has two entries when a nested one was folded."""

    name: str  # the key used in tables: a column name, or "parent+nested"
    columns: tuple[str, ...]
    levels: tuple[str, ...]
    binned: bool = False

    @property
    def title(self) -> str:
        main = label(self.columns[0])
        if len(self.columns) > 1:
            return f"{main} (incl. {', '.join(label(c) for c in self.columns[1:])})"
        return main


@dataclass(frozen=True, kw_only=True)
class Design:
    """Integer-coded factors of the analysed trials and whether they form a balanced grid."""

    factors: list[Factor]
    codes: np.ndarray  # (n, k) level index per trial and factor
    constant: dict[str, str]  # single-level factor column -> its level
    balanced: bool
    replicates: int  # trials per cell when balanced, else 0
    cells: int  # distinct factor combinations observed
    notes: list[str] = field(default_factory=list)
    unrecorded: tuple[str, ...] = ()  # factor columns absent from the tables

    @property
    def k(self) -> int:
        return len(self.factors)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(f.levels) for f in self.factors)

    def cell_index(self) -> np.ndarray:
        """Flat index of each trial's cell in the full factorial (C order)."""
        if not self.factors:
            return np.zeros(len(self.codes), dtype=np.int64)
        return np.ravel_multi_index(self.codes.T, self.shape).astype(np.int64)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


@dataclass(frozen=True, kw_only=True)
class Coded:
    """A column as integer codes into its ordered levels ("n/a" first when present)."""

    codes: np.ndarray
    levels: tuple[str, ...]
    binned: bool = False


def _compact(codes: np.ndarray, levels: list[str], binned: bool) -> Coded:
    used, codes = np.unique(codes, return_inverse=True)
    return Coded(
        codes=codes.reshape(-1).astype(np.int64),
        levels=tuple(levels[i] for i in used),
        binned=binned,
    )


def code_column(values: pd.Series) -> Coded:
    """Levels of one factor column: strings as they are, numbers formatted or binned."""
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
    binned = len(distinct) > MAX_NUMERIC_LEVELS
    if binned:
        edges = np.unique(np.quantile(numeric[finite], np.linspace(0, 1, QUANTILE_BINS + 1)))
        index = np.searchsorted(edges, numeric[finite], side="right") - 1
        index = np.clip(index, 0, len(edges) - 2)
        names = [f"{_fmt(edges[i])}-{_fmt(edges[i + 1])}" for i in range(len(edges) - 1)]
    else:
        index = np.searchsorted(distinct, numeric[finite])
        names = [_fmt(v) for v in distinct]
    codes[finite] = index + (1 if missing else 0)
    return _compact(codes, ([NA] if missing else []) + names, binned)


def build_design(trials: pd.DataFrame, unrecorded: tuple[str, ...] = ()) -> Design:
    """Find the varying factors of `trials` and code them; check for a balanced grid.

    `unrecorded` factor columns (absent from the tables) are neither factors nor constants.
    """
    notes: list[str] = []
    coded: dict[str, Coded] = {}
    constant: dict[str, str] = {}
    recorded = [c for c in FACTOR_COLUMNS if c not in unrecorded]
    for column in recorded:
        column_codes = code_column(trials[column])
        if len(column_codes.levels) > 1:
            coded[column] = column_codes
        elif column_codes.levels:
            constant[column] = column_codes.levels[0]
    absorbed = {n for n, p in NESTED.items() if n in coded and p in coded}
    factors: list[Factor] = []
    columns_codes: list[np.ndarray] = []
    for column in recorded:
        if column not in coded or column in absorbed:
            continue
        current = coded[column]
        cols = (column,)
        for nested in (n for n, p in NESTED.items() if p == column and n in absorbed):
            folded = _fold(current, coded[nested], nested)
            if folded is None:
                notes.append(
                    f"{label(nested)} is determined by {label(column)} here (one value per "
                    f"{label(column)} level), so it is not a separate factor."
                )
                continue
            current = folded
            cols += (nested,)
            notes.append(
                f"{label(nested)} only applies to some {label(column)} levels, so it is "
                f"nested in it: the factor '{label(column)}' includes it (levels such as "
                f"'{current.levels[-1]}')."
            )
        factors.append(
            Factor(name="+".join(cols), columns=cols, levels=current.levels, binned=current.binned)
        )
        columns_codes.append(current.codes)
        for binned_column in (c for c in cols if coded[c].binned):
            notes.append(
                f"{label(binned_column)} takes many values, so it was binned into quantile "
                "levels for the analysis."
            )
    codes = (
        np.column_stack(columns_codes)
        if columns_codes
        else np.zeros((len(trials), 0), dtype=np.int64)
    )
    balanced, replicates, cells = _balance(codes, tuple(len(f.levels) for f in factors))
    return Design(
        factors=factors,
        codes=codes,
        constant=constant,
        balanced=balanced,
        replicates=replicates,
        cells=cells,
        notes=notes,
        unrecorded=tuple(c for c in FACTOR_COLUMNS if c in unrecorded),
    )


def _fold(parent: Coded, nested: Coded, name: str) -> Coded | None:
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


def _balance(codes: np.ndarray, shape: tuple[int, ...]) -> tuple[bool, int, int]:
    """(balanced full factorial?, trials per cell if so, distinct cells observed)."""
    n = len(codes)
    if not shape or n == 0:
        return False, 0, 1 if n else 0
    full = int(np.prod(shape, dtype=np.float64))
    if full > 4 * n + 16:
        return False, 0, len(np.unique(codes, axis=0))
    counts = np.bincount(np.ravel_multi_index(codes.T, shape), minlength=full)
    balanced = bool(counts.min() > 0 and counts.min() == counts.max())
    return balanced, int(counts[0]) if balanced else 0, int((counts > 0).sum())
