"""One variance decomposition per response, whichever method the design allows.

A balanced grid gets the ANOVA (its omega^2, the nearly unbiased share, is the headline
number); anything else gets Shapley (LMG). Both end up as a `Decomposition` so the verdict,
figures and tables do not care which one ran.
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

__all__ = ["Decomposition", "decompose"]


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
    p_values: np.ndarray
    floors: np.ndarray  # share a factor would get from noise alone (df * MSE / SST)
    boot: np.ndarray  # (B, k) replicates of the headline shares
    world: np.ndarray  # (k,) the headline shares in the bootstrap population
    noise: tuple[float, float, float]  # unexplained share and its interval
    terms: pd.DataFrame  # every term (interactions too) for tables and figures
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


def _from_anova(result: AnovaResult, design: Design, response: str, n: int) -> Decomposition:
    table = result.table
    k = design.k
    mains = table.iloc[:k]
    residual = table.iloc[-1]
    # unexplained = what the (unclipped) omega^2 of every term leaves: noise-corrected like them
    unexplained = float(np.clip(1.0 - table["omega2"].iloc[:-1].sum(), 0.0, 1.0))
    terms = pd.DataFrame(
        {
            "term": table["term"].iloc[:-1],
            "kind": np.where(table["order"].iloc[:-1] == 1, "factor", "interaction"),
            "share": table["omega2"].iloc[:-1].clip(lower=0.0),
            "share_lo": table["omega2_lo"].iloc[:-1],
            "share_hi": table["omega2_hi"].iloc[:-1],
            "p_value": table["p_value"].iloc[:-1],
        }
    )
    return Decomposition(
        method="anova",
        response=response,
        n=n,
        factors=[f.name for f in design.factors],
        shares=mains["omega2"].clip(lower=0.0).to_numpy(),
        lo=mains["omega2_lo"].to_numpy(),
        hi=mains["omega2_hi"].to_numpy(),
        p_values=mains["p_value"].to_numpy(),
        floors=mains["noise_floor"].to_numpy(),
        boot=result.samples["omega2"][:, :k],
        world=result.world["omega2"][:k],
        noise=(unexplained, float(residual["eta2_lo"]), float(residual["eta2_hi"])),
        terms=terms,
        full_table=table,
        resampling=result.resampling,
        notes=list(result.notes),
    )


def _from_shapley(result: ShapleyResult, response: str, n: int, notes: list[str]) -> Decomposition:
    table = result.table
    r2_lo, r2_hi = result.r2_interval
    terms = table[["factor", "share", "share_lo", "share_hi", "p_value"]].rename(
        columns={"factor": "term"}
    )
    terms.insert(1, "kind", "factor")
    return Decomposition(
        method="shapley",
        response=response,
        n=n,
        factors=list(table["factor"]),
        shares=table["share"].to_numpy(),
        lo=table["share_lo"].to_numpy(),
        hi=table["share_hi"].to_numpy(),
        p_values=table["p_value"].to_numpy(),
        floors=table["noise_floor"].to_numpy(),
        boot=result.boot_shares,
        world=table["share_raw"].to_numpy(),
        noise=(float(np.clip(1.0 - table["share"].sum(), 0.0, 1.0)), 1.0 - r2_hi, 1.0 - r2_lo),
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
    reason = ""
    if design.balanced:
        result = run_anova(y, design, resamples, rng, reference=reference)
        if isinstance(result, AnovaResult):
            return _from_anova(result, design, response, n)
        reason = f"ANOVA not estimable ({result.reason}); "
    shapley = run_shapley(y, design, resamples, rng)
    if isinstance(shapley, ShapleyResult):
        notes = [reason + "Shapley decomposition used instead."] if reason else []
        return _from_shapley(shapley, response, n, notes)
    return NotEstimable(reason + shapley.reason)
