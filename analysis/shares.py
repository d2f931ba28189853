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


def _block_term(row: pd.Series | None, share: str, levels: int) -> BlockTerm | None:
    if row is None:
        return None
    return BlockTerm(
        share=float(np.clip(row[share], 0.0, 1.0)),
        lo=float(tested_lower(row[f"{share}_lo"], row["p_value"])),
        hi=float(row[f"{share}_hi"]),
        p_value=float(row["p_value"]),
        levels=levels,
    )


def _from_anova(result: AnovaResult, design: Design, response: str, n: int) -> Decomposition:
    table = result.table
    body = table.iloc[:-1]
    factor_rows = body[(body["order"] == 1) & ~body["block"]]
    block_rows = body[(body["order"] == 1) & body["block"]]
    k = len(factor_rows)
    residual = table.iloc[-1]
    omega = result.samples["omega2"]
    noise_boot = 1.0 - omega.sum(axis=1)
    noise_point = float(1.0 - body["omega2"].sum())
    noise_lo, noise_hi = bootstrap.interval(
        noise_boot, noise_point, float(1.0 - result.world["omega2"].sum()), angular=True
    )
    kinds = np.where(body["block"], "block", np.where(body["order"] == 1, "factor", "interaction"))
    terms = pd.DataFrame(
        {
            "term": body["term"],
            "kind": kinds,
            "share": body["omega2"].clip(lower=0.0, upper=1.0),
            "share_lo": tested_lower(body["omega2_lo"], body["p_value"]),
            "share_hi": body["omega2_hi"],
            "p_value": body["p_value"],
        }
    )
    blocks = [f for f in design.factors if f.block]
    p = factor_rows["p_value"].to_numpy()
    return Decomposition(
        method="anova",
        response=response,
        n=n,
        factors=list(factor_rows["term"]),
        shares=factor_rows["omega2"].clip(lower=0.0, upper=1.0).to_numpy(),
        lo=tested_lower(factor_rows["omega2_lo"], factor_rows["p_value"]),
        hi=factor_rows["omega2_hi"].to_numpy(),
        p_values=p,
        p_adjusted=holm(p),
        boot=omega[:, factor_rows.index.to_numpy()][:, :k],
        world=result.world["omega2"][factor_rows.index.to_numpy()],
        noise=(float(np.clip(noise_point, 0.0, 1.0)), float(noise_lo), float(noise_hi)),
        noise_var=float(residual["sum_sq"] / residual["df"]),
        df_res=int(residual["df"]),
        block=_block_term(
            block_rows.iloc[0] if len(block_rows) else None,
            "omega2",
            len(blocks[0].levels) if blocks else 0,
        ),
        terms=terms,
        full_table=table,
        resampling=result.resampling,
        notes=list(result.notes),
    )


def _from_shapley(
    result: ShapleyResult, design: Design, response: str, n: int, notes: list[str]
) -> Decomposition:
    table = result.table
    factor_rows = table[~table["block"]]
    block_rows = table[table["block"]]
    r2_lo, r2_hi = result.r2_interval
    terms = table[["factor", "share", "share_lo", "share_hi", "p_value"]].rename(
        columns={"factor": "term"}
    )
    terms.insert(1, "kind", np.where(table["block"], "block", "factor"))
    terms["share_lo"] = tested_lower(terms["share_lo"], terms["p_value"])
    index = factor_rows.index.to_numpy()
    blocks = [f for f in design.factors if f.block]
    p = factor_rows["p_value"].to_numpy()
    return Decomposition(
        method="shapley",
        response=response,
        n=n,
        factors=list(factor_rows["factor"]),
        shares=factor_rows["share"].to_numpy(),
        lo=tested_lower(factor_rows["share_lo"], factor_rows["p_value"]),
        hi=factor_rows["share_hi"].to_numpy(),
        p_values=p,
        p_adjusted=holm(p),
        boot=result.boot_shares[:, index],
        world=factor_rows["share_raw"].to_numpy(),
        noise=(float(np.clip(1.0 - table["share"].sum(), 0.0, 1.0)), 1.0 - r2_hi, 1.0 - r2_lo),
        noise_var=result.mse,
        df_res=result.df_res,
        block=_block_term(
            block_rows.iloc[0] if len(block_rows) else None,
            "share",
            len(blocks[0].levels) if blocks else 0,
        ),
        terms=terms,
        full_table=table,
        resampling="trials redrawn with replacement",
        notes=[*notes, *result.notes],
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
