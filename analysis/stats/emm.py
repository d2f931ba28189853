"""Effects in accuracy points: estimated marginal means of every level, from a linear model.

A raw level mean averages whatever trials ran at that level, so when cells are missing or
unequal a level with no effect looks better or worse through the levels of the other factors
it happened to meet. The marginal mean of a level is the model's prediction at that level
averaged over the other factors' levels with equal weights (and over the seed blocks), so
missing cells do not bias it; in a balanced grid it equals the raw mean.

The model is the additive one-hot model (with the seed block); `fit(..., pair=(i, j))` adds
the interaction of factors i and j, whose cell means show how one's effect depends on the
other. Everything is computed from per-cell sums, so 100k trials cost a few small matrices.
A factor's effect is its best minus its worst level; its 95% interval is Tukey's simultaneous
interval (studentised range), so it holds although the two levels were picked as best and
worst on the same data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

from analysis.design.factorial import Design

__all__ = ["Effect", "LinearFit", "effects", "fit", "interaction_test", "tukey_quantile"]

_TOL = 1e-9
#: Studentised-range quantiles barely move past this many residual degrees of freedom.
_MAX_DF = 400


@dataclass(frozen=True, kw_only=True)
class LinearFit:
    """The fitted cell-level model: coefficients, their (unscaled) covariance, the residual."""

    shape: tuple[int, ...]  # levels per model factor (the block last, when there is one)
    pair: tuple[int, int] | None  # factors whose interaction is in the model
    beta: np.ndarray
    ginv: np.ndarray  # (X'X)^+: covariance of beta up to the noise variance
    gram: np.ndarray
    sse: float
    df_res: int
    rank: int

    @property
    def mse(self) -> float:
        return self.sse / self.df_res if self.df_res > 0 else float("nan")

    def row(self, profile: list[np.ndarray]) -> np.ndarray:
        """The expected model row for independent level distributions, one per factor."""
        parts = [np.ones(1)] + [p[1:] for p in profile]
        if self.pair is not None:
            i, j = self.pair
            parts.append(np.outer(profile[i][1:], profile[j][1:]).ravel())
        return np.concatenate(parts)

    def estimable(self, c: np.ndarray) -> bool:
        """Whether c'beta is identified by the data (c lies in the row space of X)."""
        resid = c - c @ self.ginv @ self.gram
        return bool(np.abs(resid).max() <= 1e-6 * max(1.0, np.abs(c).max()))


def _columns(cells: np.ndarray, shape: tuple[int, ...], pair: tuple[int, int] | None):
    """Treatment-coded dummies of the observed cells (reference level 0), with the pair's
    interaction dummies last."""
    cols = [np.ones(len(cells))]
    for j, levels in enumerate(shape):
        cols += [(cells[:, j] == lv).astype(float) for lv in range(1, levels)]
    if pair is not None:
        i, j = pair
        for a in range(1, shape[i]):
            for b in range(1, shape[j]):
                cols.append(((cells[:, i] == a) & (cells[:, j] == b)).astype(float))
    return np.column_stack(cols)


def model_codes(design: Design) -> tuple[np.ndarray, tuple[int, ...]]:
    """Codes and level counts of the model's factors: the design's, then the block."""
    codes, shape = design.codes, design.shape
    if design.block is not None and design.block_codes is not None:
        codes = np.column_stack([codes, design.block_codes])
        shape = (*shape, len(design.block.levels))
    return codes, shape


def _cells(codes: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of `codes` and each trial's row index: one integer key per trial (a
    1-D unique is far cheaper than a row-wise one on 100k trials)."""
    if not shape:
        return np.zeros((1, 0), dtype=np.int64), np.zeros(len(codes), dtype=np.int64)
    if float(np.prod(shape, dtype=np.float64)) < 2**62:
        keys, groups = np.unique(np.ravel_multi_index(codes.T, shape), return_inverse=True)
        cells = np.column_stack(np.unravel_index(keys, shape))
        return cells, groups.reshape(-1)
    cells, groups = np.unique(codes, axis=0, return_inverse=True)
    return cells, groups.reshape(-1)


def fit(y: np.ndarray, design: Design, pair: tuple[int, int] | None = None) -> LinearFit:
    """Least squares on per-cell sums (pseudo-inverse, so aliased columns are harmless)."""
    codes, shape = model_codes(design)
    y = np.asarray(y, dtype=float)
    cells, groups = _cells(codes, shape)
    counts = np.bincount(groups, minlength=len(cells)).astype(float)
    sums = np.bincount(groups, weights=y, minlength=len(cells))
    x = _columns(cells, shape, pair)
    gram = x.T @ (counts[:, None] * x)
    cross = x.T @ sums
    eigval, eigvec = np.linalg.eigh(gram)
    keep = eigval > _TOL * max(float(eigval.max()), 1e-300)
    ginv = (eigvec[:, keep] / eigval[keep]) @ eigvec[:, keep].T
    beta = ginv @ cross
    rank = int(keep.sum())
    sse = max(float(y @ y - beta @ cross), 0.0)
    return LinearFit(
        shape=shape,
        pair=pair,
        beta=beta,
        ginv=ginv,
        gram=gram,
        sse=sse,
        df_res=len(y) - rank,
        rank=rank,
    )


def interaction_test(y: np.ndarray, design: Design, pair: tuple[int, int]) -> tuple[float, int]:
    """Partial F-test of the pair's interaction added to the additive model: (p, df)."""
    base, full = fit(y, design), fit(y, design, pair)
    df = full.rank - base.rank
    if df < 1 or full.df_res < 1 or full.sse <= 0:
        return float("nan"), df
    f_stat = (base.sse - full.sse) / df / full.mse
    return float(stats.f.sf(f_stat, df, full.df_res)), df


def tukey_quantile(levels: int, df: int, level: float = 0.95) -> float:
    """Half-width multiplier of Tukey's simultaneous interval for all pairs of `levels`."""
    if levels < 2 or df < 1:
        return float("nan")
    return _tukey(int(levels), int(min(df, _MAX_DF)), float(level))


@lru_cache(maxsize=256)
def _tukey(levels: int, df: int, level: float) -> float:
    if levels == 2:
        return float(stats.t.ppf(0.5 + level / 2, df))
    return float(stats.studentized_range.ppf(level, levels, df) / np.sqrt(2.0))


def _uniform(levels: int) -> np.ndarray:
    return np.full(levels, 1.0 / levels)


def _one_hot(levels: int, at: int) -> np.ndarray:
    out = np.zeros(levels)
    out[at] = 1.0
    return out


def marginal_means(model: LinearFit, j: int) -> np.ndarray:
    """Marginal mean of every level of factor j (nan where not estimable)."""
    out = np.full(model.shape[j], np.nan)
    for lv in range(model.shape[j]):
        profile = [_uniform(s) for s in model.shape]
        profile[j] = _one_hot(model.shape[j], lv)
        c = model.row(profile)
        if model.estimable(c):
            out[lv] = float(c @ model.beta)
    return out


def cell_means(model: LinearFit) -> np.ndarray:
    """Marginal means of the pair's cells (levels of i by levels of j); nan if not estimable."""
    assert model.pair is not None
    i, j = model.pair
    out = np.full((model.shape[i], model.shape[j]), np.nan)
    for a in range(model.shape[i]):
        for b in range(model.shape[j]):
            profile = [_uniform(s) for s in model.shape]
            profile[i], profile[j] = _one_hot(model.shape[i], a), _one_hot(model.shape[j], b)
            c = model.row(profile)
            if model.estimable(c):
                out[a, b] = float(c @ model.beta)
    return out


@dataclass(frozen=True, kw_only=True)
class Effect:
    """A factor's effect: best minus worst level, in response units, with Tukey's interval."""

    factor: str
    means: np.ndarray  # marginal mean per level (nan where not estimable)
    best: int | None
    worst: int | None
    size: float
    lo: float
    hi: float


def effects(
    y: np.ndarray, design: Design, noise_var: float, df_res: int, level: float = 0.95
) -> list[Effect]:
    """Every factor's marginal means and best-minus-worst effect.

    The interval's noise is the decomposition's (`noise_var`, `df_res`), so it agrees with the
    F-tests; the additive model's covariance gives each difference's standard error.
    """
    model = fit(y, design)
    out = []
    offsets = np.cumsum([1] + [s - 1 for s in model.shape])
    for j, factor in enumerate(design.factors):
        means = marginal_means(model, j)
        ok = np.flatnonzero(np.isfinite(means))
        if len(ok) < 2:
            out.append(
                Effect(
                    factor=factor.name,
                    means=means,
                    best=None,
                    worst=None,
                    size=np.nan,
                    lo=np.nan,
                    hi=np.nan,
                )
            )
            continue
        best = int(ok[np.argmax(means[ok])])
        worst = int(ok[np.argmin(means[ok])])
        c = np.zeros(len(model.beta))
        if best:
            c[offsets[j] + best - 1] += 1.0
        if worst:
            c[offsets[j] + worst - 1] -= 1.0
        se = float(np.sqrt(max(noise_var, 0.0) * (c @ model.ginv @ c)))
        half = tukey_quantile(len(ok), df_res, level) * se
        size = float(means[best] - means[worst])
        # simultaneous over all pairs, so it also covers the true spread (max minus min of
        # the true level means), which is never negative
        lo = max(size - half, 0.0) if np.isfinite(half) else np.nan
        out.append(
            Effect(
                factor=factor.name,
                means=means,
                best=best,
                worst=worst,
                size=size,
                lo=lo,
                hi=size + half,
            )
        )
    return out
