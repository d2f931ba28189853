"""Multi-way ANOVA of a balanced grid: statsmodels for the table, cell means for the bootstrap.

In a balanced full factorial every effect's sum of squares is a function of the cell means
alone (orthogonal contrasts), so a bootstrap replicate costs a few array reductions instead of
a statsmodels refit; `term_ss` is that exact equivalent and a test checks it against
statsmodels. Effect sizes: eta^2 = SS/SST, partial eta^2 = SS/(SS+SSE),
omega^2 = (SS - df*MSE)/(SST + MSE), the last one nearly unbiased for the population share.

The bootstrap population is the grid with noise-corrected cell means (`_shrunk_cells`) plus
resampled seed deviations, so its true shares are known (`_population_sizes`) and the
interval can correct for the bias of the replicates (see `bootstrap.interval`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.design.estimable import NotEstimable
from analysis.design.factorial import Design
from analysis.stats import bootstrap

__all__ = [
    "AnovaResult",
    "choose_terms",
    "effect_sizes",
    "run_anova",
    "statsmodels_anova",
    "term_ss",
]

Term = tuple[int, ...]
MIN_RESIDUAL_DF = 2


@dataclass(frozen=True, kw_only=True)
class AnovaResult:
    """Table rows are terms (main effects, then interactions), then 'Residual'."""

    table: pd.DataFrame
    samples: dict[str, np.ndarray]  # effect size -> (B, terms) bootstrap replicates
    world: dict[str, np.ndarray]  # effect size -> its value in the bootstrap population
    resampling: str
    order: int = 2  # highest interaction order fitted (1: main effects only)
    notes: list[str] = field(default_factory=list)


def choose_terms(
    shape: tuple[int, ...], n: int, blocks: tuple[int, ...] = ()
) -> tuple[list[Term], int]:
    """Main effects and two-way interactions when the data leave residual degrees of freedom.

    Higher interactions are pooled into the residual: they are rarely interpretable and a grid
    with one seed per cell would otherwise have no error term at all. Block axes (`blocks`)
    enter as main effects only: their interactions with the factors are the within-block noise.
    """
    k = len(shape)
    for order in (2, 1):
        terms = [
            t
            for r in range(1, min(order, k) + 1)
            for t in combinations(range(k), r)
            if r == 1 or not set(t) & set(blocks)
        ]
        df_terms = sum(math.prod(shape[i] - 1 for i in t) for t in terms)
        if n - 1 - df_terms >= MIN_RESIDUAL_DF:
            return terms, min(order, k)
    return [], 0


def _contrast(cell_means: np.ndarray, term: Term) -> np.ndarray:
    """Interaction contrast of `term` on (B, L1..Lk) cell means, kept broadcastable."""
    k = cell_means.ndim - 1
    others = tuple(1 + i for i in range(k) if i not in term)
    marg = cell_means.mean(axis=others, keepdims=True) if others else cell_means
    for i in term:
        marg = marg - marg.mean(axis=1 + i, keepdims=True)
    return marg


def term_ss(cell_means: np.ndarray, replicates: int, terms: list[Term]) -> np.ndarray:
    """Sums of squares of `terms` in a balanced design, batched: (B, L1..Lk) -> (B, terms)."""
    shape = cell_means.shape[1:]
    n_total = replicates * math.prod(shape)
    out = np.empty((cell_means.shape[0], len(terms)))
    axes = tuple(range(1, cell_means.ndim))
    for j, term in enumerate(terms):
        contrast = _contrast(cell_means, term)
        weight = n_total / math.prod(shape[i] for i in term)
        out[:, j] = weight * np.square(contrast).sum(axis=axes)
    return out


def _fitted_cells(cell_means: np.ndarray, terms: list[Term]) -> np.ndarray:
    fitted = cell_means.mean(axis=tuple(range(1, cell_means.ndim)), keepdims=True)
    for term in terms:
        fitted = fitted + _contrast(cell_means, term)
    return fitted


def effect_sizes(
    ss: np.ndarray, dfs: np.ndarray, sst: np.ndarray, df_res: int
) -> dict[str, np.ndarray]:
    """eta^2, partial eta^2 and omega^2 of each term; batched over leading axes."""
    sse = sst - ss.sum(axis=-1)
    mse = sse / df_res
    sst_ = sst[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "eta2": ss / sst_,
            "partial_eta2": ss / (ss + sse[..., None]),
            "omega2": (ss - dfs * mse[..., None]) / (sst_ + mse[..., None]),
            "residual": sse / sst,
        }


def statsmodels_anova(
    y: np.ndarray, design: Design, terms: list[Term], order: int
) -> pd.DataFrame:
    """The reference ANOVA table (sum-to-zero contrasts, type II) from statsmodels."""
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    frame = pd.DataFrame({f"f{j}": design.codes[:, j] for j in range(design.k)})
    frame = frame.astype(str)
    frame["y"] = y
    formula = "y ~ " + " + ".join(":".join(f"C(f{j}, Sum)" for j in t) for t in terms)
    fit = smf.ols(formula, data=frame).fit()
    table = anova_lm(fit, typ=2)
    index = []
    for name in table.index:
        found = tuple(int(i) for i in re.findall(r"C\(f(\d+), Sum\)", name))
        index.append(found if found else "Residual")
    table.index = index
    rows = [t for t in terms if t in table.index] + ["Residual"]
    return table.loc[rows]


@dataclass(frozen=True, kw_only=True)
class _Fit:
    terms: list[Term]
    values: np.ndarray  # (cells, m) observations in cell order
    ss: np.ndarray
    dfs: np.ndarray
    df_res: int
    sst: float


def _fit(y: np.ndarray, design: Design, terms: list[Term], order: int, reference: bool) -> _Fit:
    """Sums of squares of `terms` (statsmodels, or the identical cell-mean path)."""
    m = design.replicates
    values = y[np.argsort(design.cell_index(), kind="stable")].reshape(-1, m)
    dfs = np.array([math.prod(design.shape[i] - 1 for i in t) for t in terms], dtype=float)
    if reference:
        ref = statsmodels_anova(y, design, terms, order)
        ss = ref.loc[terms, "sum_sq"].to_numpy(dtype=float)
    else:
        ss = term_ss(values.mean(axis=1).reshape((1,) + design.shape), m, terms)[0]
    return _Fit(
        terms=terms,
        values=values,
        ss=ss,
        dfs=dfs,
        df_res=int(len(y) - 1 - dfs.sum()),
        sst=float(np.square(y).sum()),
    )


def _bootstrap(
    fit: _Fit, design: Design, resamples: int, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], str, list[str]]:
    """Replicates and population values of every effect size; how they were drawn."""
    m, terms, n = design.replicates, fit.terms, len(fit.values) * design.replicates
    notes: list[str] = []
    means = fit.values.mean(axis=1)
    if m >= 2:
        resampling = "within cells (each cell's seeds redrawn around its mean)"
        residuals = (fit.values - means[:, None]) * np.sqrt(m / (m - 1))
        world_terms = [t for r in range(1, design.k + 1) for t in combinations(range(design.k), r)]
        if m < bootstrap.OWN_CELL_MIN:
            notes.append(
                f"{m} seeds per cell: bootstrap residuals are drawn from all cells' pooled "
                "seed deviations (too few per cell to resample a cell's own)."
            )
    else:
        resampling = "residuals of the fitted model (one trial per cell)"
        notes.append(
            "One trial per cell: intervals come from resampling the model's residuals, which "
            "treats the pooled higher-order interactions as noise."
        )
        grid = means.reshape((1,) + design.shape)
        residuals = (means - _fitted_cells(grid, terms).ravel())[:, None]
        residuals = residuals * np.sqrt(n / fit.df_res)
        world_terms = terms
    noise_var = float(np.mean(np.square(residuals)))
    centres = _shrunk_cells(means, m, design.shape, world_terms, noise_var)
    world = _population_sizes(centres, m, design.shape, terms, noise_var)
    boot = [
        _replicate_sizes(chunk, m, design.shape, terms, fit.dfs, fit.df_res)
        for chunk in bootstrap.within_cells(centres, residuals, resamples, rng)
    ]
    samples = {key: np.concatenate([b[key] for b in boot]) for key in boot[0]}
    return samples, world, resampling, notes


def _table(
    fit: _Fit,
    design: Design,
    samples: dict[str, np.ndarray],
    world: dict[str, np.ndarray],
    level: float,
) -> pd.DataFrame:
    """The ANOVA table with F-tests and every effect size with its interval."""
    sse = fit.sst - fit.ss.sum()
    f_stat = (fit.ss / fit.dfs) / (sse / fit.df_res)
    point = effect_sizes(fit.ss[None], fit.dfs, np.array([fit.sst]), fit.df_res)
    table = pd.DataFrame(
        {
            "term": [_name(design, t) for t in fit.terms] + ["Residual"],
            "order": [len(t) for t in fit.terms] + [0],
            "block": [any(design.factors[i].block for i in t) for t in fit.terms] + [False],
            "df": list(fit.dfs) + [fit.df_res],
            "sum_sq": list(fit.ss) + [sse],
            "F": list(f_stat) + [np.nan],
            "p_value": list(stats.f.sf(f_stat, fit.dfs, fit.df_res)) + [np.nan],
        }
    )
    for key in ("eta2", "partial_eta2", "omega2"):
        est = point[key].ravel()
        if key == "eta2":  # the residual's share is the noise share
            est = np.append(est, point["residual"])
            replicates = np.column_stack([samples[key], samples["residual"]])
            truth = np.append(world[key], world["residual"])
        else:
            replicates, truth = samples[key], world[key]
        lo, hi = bootstrap.interval(replicates, est, truth, level, angular=True)
        pad = [np.nan] * (len(table) - len(est))
        table[key] = list(est) + pad
        table[f"{key}_lo"] = list(lo) + pad
        table[f"{key}_hi"] = list(hi) + pad
    return table


def run_anova(
    y: np.ndarray,
    design: Design,
    resamples: int = bootstrap.DEFAULT_RESAMPLES,
    rng: np.random.Generator | None = None,
    reference: bool = True,
) -> AnovaResult | NotEstimable:
    """ANOVA with F-tests, effect sizes and bootstrap intervals, or why it cannot be estimated.

    A block factor of `design` (the seed) enters as a main effect only, so the residual is the
    within-block noise. `reference=False` skips the statsmodels fit and takes the table from
    the cell-mean path (identical numbers, checked by a test); simulations use it for speed.
    """
    if not design.balanced:
        return NotEstimable("the design is not a balanced full factorial")
    n = len(y)
    blocks = tuple(i for i, f in enumerate(design.factors) if f.block)
    terms, order = choose_terms(design.shape, n, blocks)
    if not terms:
        return NotEstimable(
            f"{n} trials leave no residual degrees of freedom for the main effects"
        )
    y = np.asarray(y, dtype=float)
    fit = _fit(y - y.mean(), design, terms, order, reference)
    rng = rng or np.random.default_rng(0)
    samples, world, resampling, notes = _bootstrap(fit, design, resamples, rng)
    return AnovaResult(
        table=_table(fit, design, samples, world, bootstrap.LEVEL),
        samples=samples,
        world=world,
        resampling=resampling,
        order=order,
        notes=notes,
    )


def _shrunk_cells(
    means: np.ndarray, m: int, shape: tuple[int, ...], terms: list[Term], noise_var: float
) -> np.ndarray:
    """Cell means with each term's contrast shrunk by its expected noise share.

    Observed cell means carry seed noise: a term's SS exceeds its true value by about
    df * sigma^2. Resampling around raw means would add that noise a second time and shrink
    every share; scaling each contrast by sqrt(1 - df*sigma^2/SS) makes the bootstrap
    population's shares match the noise-corrected estimates.
    """
    grid = means.reshape((1,) + shape)
    n_total = m * math.prod(shape)
    out = np.full_like(grid, grid.mean())
    for term in terms:
        contrast = _contrast(grid, term)
        ss = n_total / math.prod(shape[i] for i in term) * float(np.square(contrast).sum())
        df = math.prod(shape[i] - 1 for i in term)
        if ss > 0:
            out = out + math.sqrt(max(0.0, 1.0 - df * noise_var / ss)) * contrast
    return out.ravel()


def _population_sizes(
    centres: np.ndarray, m: int, shape: tuple[int, ...], terms: list[Term], noise_var: float
) -> dict[str, np.ndarray]:
    """True variance shares of the bootstrap population (cell centres plus noise)."""
    ss = term_ss(centres.reshape((1,) + shape), m, terms)[0]
    n_total = m * math.prod(shape)
    sst = m * float(np.square(centres - centres.mean()).sum()) + n_total * noise_var
    other = sst - ss.sum()
    return {
        "eta2": ss / sst,
        "omega2": ss / sst,
        "partial_eta2": ss / (ss + other),
        "residual": np.array(other / sst),
    }


def _replicate_sizes(
    chunk: np.ndarray,
    m: int,
    shape: tuple[int, ...],
    terms: list[Term],
    dfs: np.ndarray,
    df_res: int,
) -> dict[str, np.ndarray]:
    """Effect sizes of a batch of resampled grids given as (b, cells, m) observations."""
    means = chunk.mean(axis=2)
    within = np.square(chunk - means[..., None]).sum(axis=(1, 2))
    between = m * np.square(means - means.mean(axis=1, keepdims=True)).sum(axis=1)
    ss = term_ss(means.reshape((-1,) + shape), m, terms)
    return effect_sizes(ss, dfs, within + between, df_res)


def _name(design: Design, term: Term) -> str:
    return " x ".join(design.factors[i].name for i in term)
