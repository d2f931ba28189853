"""From trial rows to a factorial design: which factors vary, their levels, blocks and balance.

Decisions made here, each stated in the report:
- a factor is a column of `FACTOR_COLUMNS` with more than one level among the analysed trials;
  a factor column absent from the tables is "unrecorded", not a factor with one level;
- a column that only exists under some levels of another (any condition of the factor table:
  the MRS temperature under the MRS rules, beta under TRADES/MART, the fine-tuning recipe when
  something is fine-tuned) is folded into that parent: its "n/a" level coincides with the
  parent's other levels, and splitting one effect between two aliased columns would misattribute
  it. Folded numeric columns are split at their median, so the folded factor keeps few levels;
- `seed` is never a factor. When trials of different configurations share a seed they share a
  dense model, so the seed is a block: a term of its own in the decomposition ("dense-model
  variation") whose removal leaves the within-block noise;
- any two remaining columns (block included) whose levels coincide on the data cannot be told
  apart: they are analysed as one factor and named.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from analysis.design.coding import MAX_NUMERIC_LEVELS, NA, Coded, code_column, combine, fold
from robprune.config.factors import FACTOR_COLUMNS, FACTORS, factor_for_path, label

__all__ = [
    "BLOCK",
    "NA",
    "NESTED",
    "Design",
    "Factor",
    "build_design",
    "cell_codes",
    "code_column",
]

#: The column whose values identify a dense model shared by trials.
BLOCK = "seed"
#: Folded numeric columns with more values than this are split at their median (2 levels), so
#: a folded factor keeps few levels and its minimum detectable effect stays meaningful.
NESTED_BINS = 2


def _parent(spec) -> str | None:
    """The factor column a factor only exists under: its CONDITIONS rule, else its `when`."""
    if spec.parent is not None:
        return spec.parent
    if spec.when is not None:
        owner = factor_for_path(spec.when[0])
        return owner.column if owner is not None else None
    return None


#: Nested column -> the factor it only exists under (from robprune.config.factors' conditions).
NESTED = {f.column: _parent(f) for f in FACTORS if _parent(f) is not None}


@dataclass(frozen=True, kw_only=True)
class Factor:
    """One factor of the analysis; `columns` has several entries when others were folded in."""

    name: str  # the key used in tables: a column name, or "first+second+..."
    columns: tuple[str, ...]
    levels: tuple[str, ...]
    binned: bool = False
    block: bool = False  # the seed block (dense model), not a factor of the question
    aliased: bool = False  # columns that cannot be told apart, merged

    @property
    def title(self) -> str:
        if self.block:
            return "dense-model variation (seed blocks)"
        main = label(self.columns[0])
        if self.aliased:
            return " = ".join(label(c) for c in self.columns)
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
    block: Factor | None = None  # seed blocks, when trials of different cells share a seed
    block_codes: np.ndarray | None = None
    block_reason: str = ""  # why there is no block, when there is none
    #: folded factor name -> each trial's level of its parent column alone (the MDE of a
    #: difference between two parent levels, whatever their folded settings)
    parent_codes: dict[str, np.ndarray] = field(default_factory=dict)

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

    def with_block(self) -> Design:
        """The design with the block as its last factor (the model the tests are run on)."""
        if self.block is None or self.block_codes is None:
            return self
        codes = np.column_stack([self.codes, self.block_codes])
        shape = (*self.shape, len(self.block.levels))
        balanced, replicates, cells = _balance(codes, shape)
        return replace(
            self,
            factors=[*self.factors, self.block],
            codes=codes,
            balanced=balanced and self.balanced,
            replicates=replicates,
            cells=cells,
            block=None,
            block_codes=None,
        )


def _code_all(trials: pd.DataFrame, recorded: list[str]) -> tuple[dict[str, Coded], dict]:
    """Codes of every varying column; a numeric column nested in a varying parent is split at
    its median (NESTED_BINS levels) when it takes more values, since it will be folded."""
    coded: dict[str, Coded] = {}
    constant: dict[str, str] = {}
    for column in recorded:
        column_codes = code_column(trials[column])
        if len(column_codes.levels) > 1:
            coded[column] = column_codes
        elif column_codes.levels:
            constant[column] = column_codes.levels[0]
    for column in [c for c in coded if NESTED.get(c) in coded]:
        split = code_column(trials[column], NESTED_BINS, NESTED_BINS)
        if len(split.levels) > 1:
            coded[column] = split
    return coded, constant


def _fold_nested(coded: dict[str, Coded], recorded: list[str], notes: list[str]) -> list[Factor]:
    """One factor per varying column, nested columns folded into their parent."""
    absorbed = {n for n, p in NESTED.items() if n in coded and p in coded}
    factors: list[Factor] = []
    for column in recorded:
        if column not in coded or column in absorbed:
            continue
        current, cols = coded[column], (column,)
        for nested in (n for n, p in NESTED.items() if p == column and n in absorbed):
            folded = fold(current, coded[nested], nested)
            if folded is None:
                notes.append(
                    f"{label(nested)} is determined by {label(column)} here (one value per "
                    f"{label(column)} level), so it is not a separate factor."
                )
                continue
            current, cols = folded, (*cols, nested)
            notes.append(
                f"{label(nested)} only applies to some {label(column)} levels, so it is "
                f"folded into it: the factor '{label(column)}' includes it (levels such as "
                f"'{current.levels[-1]}')."
            )
        for binned in (c for c in cols if coded[c].binned):
            how = (
                f"takes more than {NESTED_BINS} values, so it was split at its median"
                if binned in absorbed
                else f"takes more than {MAX_NUMERIC_LEVELS} values, so it was binned into "
                "quantile levels"
            )
            notes.append(f"{label(binned)} {how} for the analysis.")
        factors.append(
            Factor(name="+".join(cols), columns=cols, levels=current.levels, binned=current.binned)
        )
        coded["+".join(cols)] = current
    return factors


def _block(trials: pd.DataFrame, cells: np.ndarray, notes: list[str]) -> tuple[Coded | None, str]:
    """The seed as a block when some seed is shared by trials of different cells; else None
    and why not, in words that are true of these trials (the report's noise sentence)."""
    if BLOCK not in trials or trials[BLOCK].isna().all():
        return None, "the trials record no seed, so trials cannot be matched on their dense model"
    if trials[BLOCK].isna().any():
        missing = int(trials[BLOCK].isna().sum())
        return None, (
            f"{missing} of {len(trials)} trials record no seed, so trials cannot all be matched "
            "on their dense model"
        )
    coded = code_column(trials[BLOCK].astype(float))
    if len(coded.levels) < 2:
        return None, (
            f"every trial has seed {coded.levels[0]}, so all share one dense model: its "
            "variation is not sampled, and the results hold for this dense model"
        )
    if coded.binned:
        coded = code_column(trials[BLOCK].astype(str))
    pairs, _ = combine(coded.codes, cells)
    if int(pairs.max()) + 1 == len(coded.levels):
        return None, "no seed is shared by trials of different configurations"
    notes.append(
        f"Trials of different configurations share seeds ({len(coded.levels)} seeds), so they "
        "share a dense model: the seed is a block, its variation is reported as dense-model "
        "variation, and the noise is the within-block residual."
    )
    return coded, ""


def _merge_aliases(
    factors: list[Factor], codes: list[np.ndarray], notes: list[str]
) -> tuple[list[Factor], list[np.ndarray]]:
    """Merge every pair of factors whose levels coincide (one-to-one) on these trials."""
    i = 0
    while i < len(factors):
        j = i + 1
        while j < len(factors):
            pair, _ = combine(codes[i], codes[j])
            count = len(np.unique(pair))
            if count == len(factors[i].levels) == len(factors[j].levels):
                a, b = factors[i], factors[j]
                notes.append(
                    f"{a.title} and {b.title} cannot be told apart on these trials (each level "
                    "of one occurs only with one level of the other): they are analysed as one "
                    "factor."
                )
                levels = tuple(
                    f"{a.levels[codes[i][k]]} / {b.levels[codes[j][k]]}"
                    for k in (np.nonzero(codes[i] == lv)[0][0] for lv in range(len(a.levels)))
                )
                factors[i] = Factor(
                    name=f"{a.name}+{b.name}",
                    columns=(*a.columns, *b.columns),
                    levels=levels,
                    binned=a.binned or b.binned,
                    aliased=True,
                )
                del factors[j], codes[j]
                continue
            j += 1
        i += 1
    return factors, codes


def build_design(trials: pd.DataFrame, unrecorded: tuple[str, ...] = ()) -> Design:
    """Find the varying factors of `trials`, code them and the seed blocks; check balance.

    `unrecorded` factor columns (absent from the tables) are neither factors nor constants.
    """
    notes: list[str] = []
    recorded = [c for c in FACTOR_COLUMNS if c not in unrecorded]
    coded, constant = _code_all(trials, recorded)
    factors = _fold_nested(coded, recorded, notes)
    parents = {f.name: coded[f.columns[0]].codes for f in factors if len(f.columns) > 1}
    codes = [coded[f.name].codes for f in factors]
    factors, codes = _merge_aliases(factors, codes, notes)
    matrix = np.column_stack(codes) if codes else np.zeros((len(trials), 0), dtype=np.int64)
    shape = tuple(len(f.levels) for f in factors)
    block, block_reason = (
        _block(trials, cell_codes(matrix), notes) if factors else (None, "no factor varies")
    )
    block_factor = None
    if block is not None:
        block_factor = Factor(name=BLOCK, columns=(BLOCK,), levels=block.levels, block=True)
        for factor, column in zip(factors, codes, strict=True):
            pair, _ = combine(column, block.codes)
            if int(pair.max()) + 1 == len(factor.levels) == len(block.levels):
                notes.append(
                    f"{factor.title} and the seed (dense model) cannot be told apart on these "
                    "trials (each seed was run with one level only): no block term is fitted, "
                    f"so dense-model variation is part of the {factor.title} effect."
                )
                block, block_factor = None, None
                block_reason = (
                    f"each seed was run with one {factor.title} level only, so the seed "
                    f"cannot be told apart from the {factor.title}"
                )
                break
    balanced, replicates, n_cells = _balance(matrix, shape)
    return Design(
        factors=factors,
        codes=matrix,
        constant=constant,
        unrecorded=tuple(c for c in FACTOR_COLUMNS if c in unrecorded),
        balanced=balanced,
        replicates=replicates,
        cells=n_cells,
        block_codes=block.codes if block is not None else None,
        block_reason=block_reason,
        parent_codes={f.name: parents[f.name] for f in factors if f.name in parents},
        notes=notes,
        block=block_factor,
    )


def cell_codes(matrix: np.ndarray) -> np.ndarray:
    """One integer per distinct row of `matrix` (a trial's cell), without a full-grid index."""
    cells = np.zeros(len(matrix), dtype=np.int64)
    for j in range(matrix.shape[1]):
        cells, _ = combine(cells, matrix[:, j])
    return cells


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
