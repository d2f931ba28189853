"""Levels that are the same configuration under two names, found before the decomposition.

Counting one configuration twice as two levels of a factor biases that factor's share towards
zero and doubles its apparent evidence. Two sources:
- by construction: under per-layer ratio rules `lamp` keeps exactly the channels `l2` keeps
  (LAMP only differs from magnitude when layers compete for one global budget);
- on the data: two levels of a factor whose trials, matched on every other factor and the
  seed, give identical numbers on every recorded metric in every matched pair.
The second level's trials are repeats of the first's: they are left out, with a line saying so.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from robprune.config.factors import FACTOR_COLUMNS, label

__all__ = ["SAME_DECISION", "drop_identical_levels"]

#: (factor column, kept level, dropped level, ratio rules under which they decide alike).
SAME_DECISION = (("criterion", "l2", "lamp", ("uniform", "mrs", "mrs_band", "mrs_zscore")),)
_METRICS = ("robust_acc", "clean_acc", "fgsm_acc", "pgd_acc", "params", "flops")
_MAX_LEVELS = 12


def _by_construction(trials: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    for column, kept, dropped, rules in SAME_DECISION:
        if column not in trials or trials[column].isna().all():
            continue
        rule = trials["ratio_rule"] if "ratio_rule" in trials else pd.Series(None, trials.index)
        per_layer = rule.isna() | rule.isin(rules)
        repeat = per_layer & (trials[column] == dropped)
        if not repeat.any() or not (per_layer & (trials[column] == kept)).any():
            continue
        notes.append(
            f"{label(column)} '{dropped}' keeps exactly the channels '{kept}' keeps under "
            f"per-layer ratio rules (LAMP rescales within a layer only), so its "
            f"{int(repeat.sum())} trials repeat '{kept}''s and were left out."
        )
        trials = trials.loc[~repeat]
    return trials


def _keys(trials: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A 64-bit hash of each trial's factors and seed, and each column's part of it."""
    rng = np.random.default_rng(12345)
    parts = {}
    for column in (*FACTOR_COLUMNS, "seed"):
        if column in trials:
            codes = pd.factorize(trials[column], use_na_sentinel=False)[0].astype(np.uint64)
            parts[column] = codes * rng.integers(1, 2**63, dtype=np.uint64)
    total = np.zeros(len(trials), dtype=np.uint64)
    for part in parts.values():
        total = total + part
    return total, parts


def _same_on_data(trials: pd.DataFrame, column: str, key: np.ndarray, metrics: list[str]):
    """Pairs (kept, dropped, matches) of levels of `column` whose matched trials agree."""
    found = []
    values = trials[column].to_numpy()
    numbers = trials[metrics].to_numpy(dtype=float)
    key = np.where(np.isfinite(numbers).all(axis=1), key, np.arange(len(key), dtype=np.uint64))
    levels = sorted(trials[column].dropna().unique(), key=str)
    for a, b in combinations(levels, 2):
        ia, ib = np.flatnonzero(values == a), np.flatnonzero(values == b)
        ka, first_a = np.unique(key[ia], return_index=True)
        kb, first_b = np.unique(key[ib], return_index=True)
        common, pa, pb = np.intersect1d(ka, kb, return_indices=True)
        if len(common) < 2:
            continue
        left = numbers[ia[first_a[pa]]]
        right = numbers[ib[first_b[pb]]]
        if np.array_equal(left, right, equal_nan=True):
            found.append((a, b, len(common)))
    return found


def drop_identical_levels(trials: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The trials without repeated levels, and one line per level left out."""
    notes: list[str] = []
    trials = _by_construction(trials, notes)
    metrics = [m for m in _METRICS if m in trials and trials[m].notna().any()]
    if len(metrics) < 2:  # one number agreeing twice is not evidence of identity
        return trials.reset_index(drop=True), notes
    total, parts = _keys(trials)
    for column in FACTOR_COLUMNS:
        if column not in trials or not 2 <= trials[column].nunique() <= _MAX_LEVELS:
            continue
        key = total - parts[column]
        for kept, dropped, pairs in _same_on_data(trials, column, key, metrics):
            if not (trials[column] == dropped).any():
                continue
            notes.append(
                f"{label(column)} '{dropped}' gave exactly the numbers of '{kept}' in all "
                f"{pairs} matched pairs of trials (same other factors and seed): the two are "
                f"one configuration, so the '{dropped}' trials were left out."
            )
            keep = (trials[column] != dropped).to_numpy()
            trials, total = trials.loc[keep], total[keep]
            parts = {c: v[keep] for c, v in parts.items()}
    return trials.reset_index(drop=True), notes
