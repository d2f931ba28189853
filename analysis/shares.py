"""One variance decomposition per response, whichever method the design allows.

A balanced grid gets the ANOVA (its omega^2, the nearly unbiased share, is the headline
number); anything else gets Shapley (LMG). Both end up as a `Decomposition` so the verdict,
figures and tables do not care which one ran. The seed block, when there is one, is a term of
its own ("dense-model variation"); every F-test is on the within-block residual. Whether a
factor is distinguishable from noise is decided by those F-tests, Holm-adjusted over the
factors (`p_adjusted`); the shares and their intervals only describe size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import bootstrap
from analysis.anova import AnovaResult, run_anova
from analysis.design import Design
from analysis.estimable import NotEstimable
from analysis.shapley import ShapleyResult, run_shapley

__all__ = ["BlockTerm", "Decomposition", "decompose", "holm", "tested_lower"]


#: A share's lower bound is 0 unless its F-test rejects at this level (one-sided 97.5%).
LOWER_TAIL = 0.025


def tested_lower(lo: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Lower bounds of 95% share intervals, zero where the term's F-test does not reject at
    2.5%: the interval then excludes 0 exactly when the test says the share is not 0 (test
    inversion), so a term without effect gets a positive lower bound in 2.5% of tables; the
    bootstrap alone put it there in up to 13% (the bootstrap population keeps some of the
    noise a zero effect picked up)."""
    lo = np.asarray(lo, dtype=float)
    p = np.asarray(p, dtype=float)
    return np.where(np.isfinite(p) & (p < LOWER_TAIL), lo, 0.0)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment: reject p_adjusted < alpha keeps the family-wise error."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if not len(finite):
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    scaled = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out[order] = np.minimum(scaled, 1.0)
    return out


@dataclass(frozen=True, kw_only=True)
class BlockTerm:
    """The seed blocks' term: dense-model variation, with its share, interval and F-test."""

    share: float
    lo: float
    hi: float
    p_value: float
    levels: int


@dataclass(frozen=True, kw_only=True)
class Decomposition:
    """Headline variance shares of the main factors, with what is needed to compare them."""

    method: str  # "anova" | "shapley"
    response: str
    n: int
    factors: list[str]
    shares: np.ndarray  # (k,) headline share per factor
    lo: np.ndarray
    hi: np.ndarray
    p_values: np.ndarray  # F-test of each factor on the within-block residual
    p_adjusted: np.ndarray  # Holm over the factors: the decision "distinguishable from noise"
    boot: np.ndarray  # (B, k) replicates of the headline shares
    world: np.ndarray  # (k,) the headline shares in the bootstrap population
    noise: tuple[float, float, float]  # unexplained share and its interval
    noise_var: float  # within-block residual mean square, in squared response units
    df_res: int
    block: BlockTerm | None
    terms: pd.DataFrame  # every term (interactions, block) for tables and figures
    full_table: pd.DataFrame  # the method's own table, for CSV
    resampling: str
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.method == "anova":
            return "multi-way ANOVA, ω²"
        return "Shapley (LMG) decomposition of R²"

    def difference(self, i: int, j: int, level: float = 0.95) -> tuple[float, float, float]:
        """Share of factor i minus share of factor j, with its bootstrap interval."""
        diff = self.boot[:, i] - self.boot[:, j]
        point = float(self.shares[i] - self.shares[j])
        world = float(self.world[i] - self.world[j])
        lo, hi = bootstrap.interval(diff, point, world, level, bounds=(-1.0, 1.0))
        return point, float(lo), float(hi)


def _assemble(
    method: str,
    response: str,
    n: int,
    design: Design,
    terms: pd.DataFrame,
    samples: tuple[np.ndarray, np.ndarray],
    noise: tuple[tuple[float, float, float], float, int],
    source: tuple[pd.DataFrame, str, list[str]],
) -> Decomposition:
    """The decomposition from every term's standard row (term, kind, share, share_lo,
    share_hi, p_value), the bootstrap replicates and population values aligned with the rows,
    the noise (share interval, mean square, df), and the method's own table and notes."""
    terms = terms.assign(
        share=terms["share"].clip(lower=0.0, upper=1.0),
        share_lo=tested_lower(terms["share_lo"], terms["p_value"]),
    ).reset_index(drop=True)
    main = terms.index[terms["kind"] == "factor"].to_numpy()
    block = terms[terms["kind"] == "block"]
    blocks = [f for f in design.factors if f.block]
    boot, world = samples
    p = terms.loc[main, "p_value"].to_numpy(dtype=float)
    block_term = None
    if len(block):
        row = block.iloc[0]
        block_term = BlockTerm(
            share=float(row["share"]),
            lo=float(row["share_lo"]),
            hi=float(row["share_hi"]),
            p_value=float(row["p_value"]),
            levels=len(blocks[0].levels),
        )
    full_table, resampling, notes = source
    return Decomposition(
        method=method,
        response=response,
        n=n,
        factors=list(terms.loc[main, "term"]),
        shares=terms.loc[main, "share"].to_numpy(dtype=float),
        lo=terms.loc[main, "share_lo"].to_numpy(dtype=float),
        hi=terms.loc[main, "share_hi"].to_numpy(dtype=float),
        p_values=p,
        p_adjusted=holm(p),
        boot=boot[:, main],
        world=np.asarray(world)[main],
        noise=noise[0],
        noise_var=float(noise[1]),
        df_res=int(noise[2]),
        block=block_term,
        terms=terms,
        full_table=full_table,
        resampling=resampling,
        notes=notes,
    )


def _from_anova(result: AnovaResult, design: Design, response: str, n: int) -> Decomposition:
    table = result.table
    body = table.iloc[:-1]
    residual = table.iloc[-1]
    omega = result.samples["omega2"]
    noise_point = float(1.0 - body["omega2"].sum())
    noise_lo, noise_hi = bootstrap.interval(
        1.0 - omega.sum(axis=1),
        noise_point,
        float(1.0 - result.world["omega2"].sum()),
        angular=True,
    )
    kinds = np.where(body["block"], "block", np.where(body["order"] == 1, "factor", "interaction"))
    terms = body[["term", "omega2", "omega2_lo", "omega2_hi", "p_value"]].set_axis(
        ["term", "share", "share_lo", "share_hi", "p_value"], axis=1
    )
    terms.insert(1, "kind", kinds)
    noise = (float(np.clip(noise_point, 0.0, 1.0)), float(noise_lo), float(noise_hi))
    mse = (noise, residual["sum_sq"] / residual["df"], residual["df"])
    source = (table, result.resampling, list(result.notes))
    return _assemble(
        "anova", response, n, design, terms, (omega, result.world["omega2"]), mse, source
    )


def _from_shapley(
    result: ShapleyResult, design: Design, response: str, n: int, notes: list[str]
) -> Decomposition:
    table = result.table
    r2_lo, r2_hi = result.r2_interval
    terms = table[["factor", "share", "share_lo", "share_hi", "p_value"]].rename(
        columns={"factor": "term"}
    )
    terms.insert(1, "kind", np.where(table["block"], "block", "factor"))
    noise = (float(np.clip(1.0 - table["share"].sum(), 0.0, 1.0)), 1.0 - r2_hi, 1.0 - r2_lo)
    samples = (result.boot_shares, table["share_raw"].to_numpy())
    source = (table, "trials redrawn with replacement", [*notes, *result.notes])
    return _assemble(
        "shapley", response, n, design, terms, samples, (noise, result.mse, result.df_res), source
    )


def decompose(
    y: np.ndarray,
    design: Design,
    response: str,
    resamples: int = bootstrap.DEFAULT_RESAMPLES,
    rng: np.random.Generator | None = None,
    reference: bool = True,
) -> Decomposition | NotEstimable:
    """ANOVA for a balanced grid, Shapley otherwise; or why neither could run."""
    rng = rng or np.random.default_rng(0)
    if design.k == 0:
        return NotEstimable("no factor takes more than one value among the analysed trials")
    if float(np.ptp(y)) == 0.0:
        return NotEstimable(
            f"{response} is the same in every analysed trial: there is no variance to explain"
        )
    n = len(y)
    model = design.with_block()
    reason = ""
    if model.balanced:
        result = run_anova(y, model, resamples, rng, reference=reference)
        if isinstance(result, AnovaResult):
            return _from_anova(result, model, response, n)
        reason = f"ANOVA not estimable ({result.reason}); "
    shapley = run_shapley(y, model, resamples, rng)
    if isinstance(shapley, ShapleyResult):
        notes = [reason + "Shapley decomposition used instead."] if reason else []
        return _from_shapley(shapley, model, response, n, notes)
    return NotEstimable(reason + shapley.reason)
