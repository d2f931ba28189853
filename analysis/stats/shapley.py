"""Shapley (LMG) decomposition of explained variance for unbalanced search data.

With correlated factors (a search samples some combinations more than others) sequential sums
of squares depend on the order of the terms. LMG averages each factor's R^2 gain over every
order, i.e. the Shapley value of the game v(S) = R^2 of the additive one-hot model on the
factors in S. All 2^k subsets are fitted from one Gram matrix of the observed cells, so a
bootstrap replicate costs 2^k small batched eigen-decompositions, not 2^k regressions on the
rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from analysis.design.estimable import NotEstimable
from analysis.design.factorial import Design
from analysis.stats import bootstrap

__all__ = ["ShapleyResult", "run_shapley", "shapley_matrix", "subset_r2"]

MAX_FACTORS = 10
_EIG_TOL = 1e-9


@dataclass(frozen=True, kw_only=True)
class ShapleyResult:
    """One row per factor (the block too): its share of variance with interval, and F-test.

    `share` is the LMG share less its bootstrap bias estimate (the raw one, `share_raw`,
    includes noise fitted by each factor's dummies); the interval is centred on it.
    """

    table: pd.DataFrame
    r2_interval: tuple[float, float]  # of the full additive model's R^2
    boot_shares: np.ndarray  # (B, k)
    mse: float  # residual mean square of the full additive model (within-block noise)
    df_res: int
    notes: list[str] = field(default_factory=list)


def shapley_matrix(k: int) -> np.ndarray:
    """(2^k, k) weights so that shares = R^2-of-every-subset @ matrix."""
    weights = np.zeros((1 << k, k))
    for mask in range(1 << k):
        size = bin(mask).count("1")
        for j in range(k):
            if mask & (1 << j):
                continue
            w = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            weights[mask | (1 << j), j] += w
            weights[mask, j] -= w
    return weights


def _cell_design(cells: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Intercept plus treatment-coded dummies per observed cell; column blocks per factor."""
    columns = [np.ones(len(cells))]
    blocks = []
    start = 1
    for j, levels in enumerate(shape):
        block = [(cells[:, j] == lv).astype(float) for lv in range(1, levels)]
        columns += block
        blocks.append(np.arange(start, start + len(block)))
        start += len(block)
    return np.column_stack(columns), blocks


def _projection(
    gram: np.ndarray, cross: np.ndarray, exact: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """c' G^+ c and rank, batched over the leading axis (pseudo-inverse: aliasing is fine).

    `exact=False` (bootstrap replicates) solves with a tiny ridge instead of an eigen-
    decomposition: several times faster, the same fit up to ~1e-9 relative, no rank.
    """
    if not exact:
        q = gram.shape[-1]
        ridge = _EIG_TOL * np.maximum(np.trace(gram, axis1=1, axis2=2) / q, 1e-300)
        solved = np.linalg.solve(gram + ridge[:, None, None] * np.eye(q), cross[..., None])
        return np.einsum("bq,bq->b", cross, solved[..., 0]), np.zeros(len(gram), dtype=np.int64)
    eigval, eigvec = np.linalg.eigh(gram)
    proj = np.einsum("bqr,bq->br", eigvec, cross)
    keep = eigval > _EIG_TOL * np.maximum(eigval.max(axis=1, keepdims=True), 1e-300)
    safe = np.where(keep, eigval, 1.0)
    return np.where(keep, proj**2 / safe, 0.0).sum(axis=1), keep.sum(axis=1)


def subset_r2(
    gram: np.ndarray,
    cross: np.ndarray,
    sums: tuple[np.ndarray, np.ndarray, np.ndarray],
    blocks: list[np.ndarray],
    exact: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """R^2 and rank of the additive model on every subset of factors: (B, 2^k) each.

    `gram` = X'WX (B, p, p), `cross` = X'Wy (B, p), `sums` = (sum w, sum wy, sum wy^2).
    """
    k = len(blocks)
    weight, wy, wyy = sums
    mean_ss = wy**2 / weight
    total = wyy - mean_ss
    r2 = np.zeros((gram.shape[0], 1 << k))
    rank = np.ones((gram.shape[0], 1 << k), dtype=np.int64)
    for mask in range(1, 1 << k):
        cols = np.concatenate([[0]] + [blocks[j] for j in range(k) if mask & (1 << j)])
        fitted, rk = _projection(gram[:, cols][:, :, cols], cross[:, cols], exact)
        with np.errstate(invalid="ignore", divide="ignore"):
            r2[:, mask] = (fitted - mean_ss) / total
        rank[:, mask] = rk
    return r2, rank


def _products(x: np.ndarray) -> np.ndarray:
    """Per-cell products x_i x_j of the upper triangle, C-contiguous for a fast matmul."""
    upper = np.triu_indices(x.shape[1])
    return np.ascontiguousarray(x[:, upper[0]] * x[:, upper[1]])


def _gram(
    x: np.ndarray, products: np.ndarray, counts: np.ndarray, sums: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """X'WX and X'Wy per replicate, from per-cell weights; only the upper triangle is summed."""
    p = x.shape[1]
    upper = np.triu_indices(p)
    gram = np.empty((counts.shape[0], p, p))
    packed = counts @ products
    gram[:, upper[0], upper[1]] = packed
    gram[:, upper[1], upper[0]] = packed
    return gram, sums @ x


def _tests(
    r2: np.ndarray, rank: np.ndarray, sst: float, n: int, design: Design
) -> tuple[list[int], list[float], float, int, list[str]]:
    """Each factor's partial F-test given all the others: df, p, and the residual MSE, df."""
    k = design.k
    full = (1 << k) - 1
    df_res = n - int(rank[0, full])
    mse = sst * (1.0 - r2[0, full]) / df_res if df_res > 0 else np.nan
    dfs, pvals, notes = [], [], []
    for j in range(k):
        without = full & ~(1 << j)
        df_j = int(rank[0, full] - rank[0, without])
        gain = sst * (r2[0, full] - r2[0, without])
        dfs.append(df_j)
        if df_res > 0 and df_j > 0 and mse > 0:
            pvals.append(float(stats.f.sf(gain / df_j / mse, df_j, df_res)))
        else:
            pvals.append(np.nan)
        if df_j == 0:
            notes.append(
                f"{design.factors[j].title} cannot be told apart from the other factors on "
                "these trials (it adds nothing to their fit): its effect is not tested, and its "
                "share comes only from what it shares with them."
            )
    return dfs, pvals, float(mse), df_res, notes


def _boot(
    groups: np.ndarray,
    y: np.ndarray,
    cells: int,
    fit: tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray],
    resamples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Row-bootstrap replicates of the shares (B, k) and of the full model's R^2 (B,)."""
    x, products, blocks, weights = fit
    boot, r2_boot = [], []
    for chunk_counts, chunk_sums, chunk_sq in bootstrap.rows(groups, y, cells, resamples, rng):
        g, c = _gram(x, products, chunk_counts, chunk_sums)
        sums_b = (chunk_counts.sum(1), chunk_sums.sum(1), chunk_sq)
        r2b, _ = subset_r2(g, c, sums_b, blocks, exact=False)
        boot.append(r2b @ weights)
        r2_boot.append(r2b[:, -1])
    return np.concatenate(boot), np.concatenate(r2_boot)


def _shares_table(
    design: Design,
    shares: np.ndarray,
    boot_shares: np.ndarray,
    level: float,
    r2: np.ndarray,
    dfs: list[int],
    pvals: list[float],
) -> pd.DataFrame:
    """One row per player: bias-corrected share, raw share, interval, R^2 alone, F-test."""
    lo, hi = bootstrap.interval(boot_shares, shares, None, level)
    adjusted = np.clip(shares - (boot_shares.mean(axis=0) - shares), 0.0, 1.0)
    return pd.DataFrame(
        {
            "factor": [f.name for f in design.factors],
            "block": [f.block for f in design.factors],
            "df": dfs,
            "share": adjusted,
            "share_raw": shares,
            "share_lo": lo,
            "share_hi": hi,
            "r2_alone": [r2[0, 1 << j] for j in range(design.k)],
            "p_value": pvals,
        }
    )


def run_shapley(
    y: np.ndarray,
    design: Design,
    resamples: int = bootstrap.DEFAULT_RESAMPLES,
    rng: np.random.Generator | None = None,
) -> ShapleyResult | NotEstimable:
    """LMG shares with row-bootstrap intervals, or the reason they cannot be estimated.

    A block factor of `design` (the seed) is one more player: its share is the dense-model
    variation, and every F-test is adjusted for it (the residual is the within-block noise).
    """
    k = design.k
    if k == 0 or k > MAX_FACTORS:
        return NotEstimable(
            "no factor varies"
            if k == 0
            else f"{k} factors vary; Shapley over 2^{k} subsets is too costly (max {MAX_FACTORS})"
        )
    y = np.asarray(y, dtype=float)
    y = y - y.mean()
    n = len(y)
    cells, groups = np.unique(design.codes, axis=0, return_inverse=True)
    groups = groups.reshape(-1)
    x, blocks = _cell_design(cells, design.shape)
    if n < x.shape[1] + 2:
        return NotEstimable(f"{n} trials are too few for {x.shape[1]} model parameters")
    weights = shapley_matrix(k)
    counts = np.bincount(groups, minlength=len(cells)).astype(float)[None]
    sums = np.bincount(groups, weights=y, minlength=len(cells))[None]
    products = _products(x)
    gram, cross = _gram(x, products, counts, sums)
    r2, rank = subset_r2(gram, cross, (counts.sum(1), sums.sum(1), np.array([y @ y])), blocks)
    if not np.isfinite(r2).all():
        return NotEstimable("the response does not vary")
    shares = (r2 @ weights)[0]
    # resamples scale with 2^k; keep the cost bounded for many factors
    resamples = int(min(resamples, max(100, 19_200 // (1 << k))))
    rng = rng or np.random.default_rng(0)
    fit = (x, products, blocks, weights)
    boot_shares, r2_boot = _boot(groups, y, len(cells), fit, resamples, rng)
    level = bootstrap.LEVEL
    r2_lo, r2_hi = bootstrap.interval(r2_boot, r2[0, -1], None, level)
    dfs, pvals, mse, df_res, notes = _tests(r2, rank, float(y @ y), n, design)
    table = _shares_table(design, shares, boot_shares, level, r2, dfs, pvals)
    return ShapleyResult(
        table=table,
        r2_interval=(float(r2_lo), float(r2_hi)),
        boot_shares=boot_shares,
        mse=mse,
        df_res=df_res,
        notes=notes,
    )
