"""One variance decomposition per response, whichever method the design allows.

A balanced grid gets the ANOVA (its omega^2, the nearly unbiased share, is the headline
number); anything else gets Shapley (LMG). Both end up as a `Decomposition` so the verdict,
figures and tables do not care which one ran. The seed block, when there is one, is a term of
its own ("dense-model variation"); every F-test is on the within-block residual. Whether a
factor is distinguishable from noise is decided by those F-tests, Holm-adjusted over the
factors (`p_adjusted`); the shares and their intervals only describe size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from analysis.design.estimable import NotEstimable
from analysis.design.factorial import Design
from analysis.design.question import question_pair
from analysis.stats import bootstrap
from analysis.stats.anova import AnovaResult, run_anova
from analysis.stats.emm import interaction_test
from analysis.stats.shapley import ShapleyResult, run_shapley

__all__ = ["BlockTerm", "Decomposition", "PairTest", "decompose", "holm", "tested_lower"]


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
class PairTest:
    """The F-test of the question's interaction (fine-tuning x criterion)."""

    term: str  # "a x b", the factors' names in design order
    index: tuple[int, int]  # positions of (fine-tuning, criterion) among the factors
    p_value: float
    p_adjusted: float  # Holm, in one family with the factors' tests
    df: int
    source: str  # "ANOVA table" | "additive model plus the interaction"


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
    order: int = 1  # highest interaction order in the fitted model (1: main effects only)
    pair: PairTest | None = None  # the question's interaction test, when both factors vary
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str:
        """The model actually fitted, and what its residual holds, in words."""
        noise = "the within-block noise" if self.block is not None else "the trial-to-trial noise"
        if self.method == "anova" and self.order >= 2:
            return (
                "main effects and two-way interactions of the factors; the residual holds the "
                f"higher-order interactions and {noise}"
            )
        if self.method == "anova":
            return (
                "main effects only (too few trials for the two-way interactions); the residual "
                f"holds every interaction and {noise}"
            )
        return (
            "an additive model of the main effects; the residual holds every interaction and "
            + noise
        )

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
    share = terms["share"].clip(lower=0.0, upper=1.0)
    terms = terms.assign(
        share=share,
        share_lo=np.minimum(tested_lower(terms["share_lo"], terms["p_value"]), share),
        share_hi=np.maximum(terms["share_hi"], share),
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
    # one clipping rule: displayed shares are clipped at 0, and the unexplained share is what
    # they leave, so the lines of the table add to 100%
    noise_point = float(1.0 - body["omega2"].clip(lower=0.0, upper=1.0).sum())
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
    point = float(np.clip(noise_point, 0.0, 1.0))
    noise = (point, min(float(noise_lo), point), max(float(noise_hi), point))
    mse = (noise, residual["sum_sq"] / residual["df"], residual["df"])
    source = (table, result.resampling, list(result.notes))
    dec = _assemble(
        "anova", response, n, design, terms, (omega, result.world["omega2"]), mse, source
    )
    return replace(dec, order=result.order)


def _from_shapley(
    result: ShapleyResult, design: Design, response: str, n: int, notes: list[str]
) -> Decomposition:
    table = result.table
    r2_lo, r2_hi = result.r2_interval
    terms = table[["factor", "share", "share_lo", "share_hi", "p_value"]].rename(
        columns={"factor": "term"}
    )
    terms.insert(1, "kind", np.where(table["block"], "block", "factor"))
    point = float(np.clip(1.0 - table["share"].sum(), 0.0, 1.0))
    noise = (point, min(1.0 - r2_hi, point), max(1.0 - r2_lo, point))
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
            return _with_pair(_from_anova(result, model, response, n), y, model)
        reason = f"ANOVA not estimable ({result.reason}); "
    shapley = run_shapley(y, model, resamples, rng)
    if isinstance(shapley, ShapleyResult):
        notes = [reason + "Shapley decomposition used instead."] if reason else []
        return _with_pair(_from_shapley(shapley, model, response, n, notes), y, model)
    return NotEstimable(reason + shapley.reason)


def _with_pair(dec: Decomposition, y: np.ndarray, model: Design) -> Decomposition:
    """Add the test of the question's interaction, Holm-adjusted in one family with the
    factors' tests (so the headline's family-wise error stays at ALPHA).

    A balanced grid with two-way terms takes it from its ANOVA table; otherwise it is the
    partial F-test of the interaction added to the additive model with the block.
    """
    index = question_pair(dec.factors)
    if index is None:
        return dec
    order = sorted(index)
    term = " x ".join(dec.factors[i] for i in order)
    row = dec.terms[(dec.terms["kind"] == "interaction") & (dec.terms["term"] == term)]
    if len(row):
        p, source = float(row["p_value"].iloc[0]), "ANOVA table"
        df = int(
            (len(model.factors[order[0]].levels) - 1) * (len(model.factors[order[1]].levels) - 1)
        )
    else:
        y = np.asarray(y, dtype=float)
        p, df = interaction_test(y - y.mean(), model, (order[0], order[1]))
        source = "additive model plus the interaction"
    adjusted = holm(np.append(dec.p_values, p))
    pair = PairTest(
        term=term,
        index=(index[0], index[1]),
        p_value=p,
        p_adjusted=float(adjusted[-1]),
        df=df,
        source=source,
    )
    return replace(dec, p_adjusted=adjusted[:-1], pair=pair)
