"""One response analysed: its design, variance decomposition and verdict, or why not.

Trials without a finite value of the response are left out (and counted); so are trials with
no seed when the others form seed blocks, since keeping them would cost every other trial its
block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis.design.estimable import NotEstimable
from analysis.design.factorial import BLOCK, Design, build_design
from analysis.read.load import usable_for
from analysis.stats.shares import Decomposition, decompose
from analysis.verdict.paragraph import Verdict, verdict

__all__ = ["SURVIVORS", "ResponseAnalysis", "analyse_response"]

#: How a table of trials that outlived a scheduler's cut is marked.
SURVIVORS = "survivors of early stopping"


@dataclass(frozen=True, kw_only=True)
class ResponseAnalysis:
    """Decomposition and verdict for one response."""

    response: str
    trials: pd.DataFrame  # completed trials with a finite response
    missing: int  # completed trials whose response is null or not finite
    unseeded: int = 0  # trials left out because they record no seed while the others do
    design: Design
    decomposition: Decomposition | NotEstimable
    verdict: Verdict
    scope: str = ""  # "" for every completed trial, else e.g. SURVIVORS


def analyse_response(
    ok: pd.DataFrame,
    response: str,
    resamples: int,
    rng: np.random.Generator,
    design: Design | None = None,
    unrecorded: tuple[str, ...] = (),
    scope: str = "",
) -> ResponseAnalysis | NotEstimable:
    """Everything about one response, or why nothing can be said about it.

    `design` may be passed when it was built from exactly the same trials (another response
    with no missing values), to avoid coding the factors twice.
    """
    trials, missing = usable_for(ok, response)
    if trials.empty:
        return NotEstimable(
            f"{response} is missing or not a finite number in all {len(ok)} completed trials"
        )
    trials, unseeded, seeded = _seeded(trials, unrecorded)
    if seeded is not None:
        design = seeded
    elif design is None or missing:
        design = build_design(trials, unrecorded)
    y = trials[response].to_numpy(dtype=float)
    dec = decompose(y, design, response, resamples, rng)
    return ResponseAnalysis(
        response=response,
        trials=trials,
        missing=missing,
        unseeded=unseeded,
        design=design,
        decomposition=dec,
        verdict=verdict(dec, design, response, y),
        scope=scope,
    )


def _seeded(
    trials: pd.DataFrame, unrecorded: tuple[str, ...]
) -> tuple[pd.DataFrame, int, Design | None]:
    """Leave out the trials without a seed when the others form seed blocks.

    A trial without a seed cannot be matched on its dense model; keeping it would cost every
    other trial its block (the noise would then hold the dense-model variation). Returns the
    trials kept, how many were left out, and their design (None when nothing was left out).
    """
    if BLOCK not in trials:
        return trials, 0, None
    known = trials[BLOCK].notna().to_numpy()
    if known.all() or not known.any():
        return trials, 0, None
    kept = trials[known].reset_index(drop=True)
    design = build_design(kept, unrecorded)
    if design.block is None:
        return trials, 0, None
    return kept, int((~known).sum()), design
