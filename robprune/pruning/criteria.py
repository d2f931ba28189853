"""Channel-importance criteria, keyed by name, each a Torch-Pruning importance.

`needs` says what the criterion must see before `pruner.step()`: Taylor needs gradients of the
adversarial loss in `.grad`, Hessian needs per-sample gradients accumulated into the scorer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch_pruning as tp

__all__ = ["Criterion", "CRITERIA", "get_criterion"]


@dataclass(frozen=True, kw_only=True)
class Criterion:
    name: str
    make: Callable[[], tp.importance.Importance]
    needs: Literal["nothing", "grad", "per_sample_grad"] = "nothing"
    description: str = ""


CRITERIA: dict[str, Criterion] = {
    c.name: c
    for c in (
        Criterion(
            name="random", make=tp.importance.RandomImportance, description="uniformly random"
        ),
        Criterion(
            name="l1", make=lambda: tp.importance.MagnitudeImportance(p=1), description="L1 norm"
        ),
        Criterion(
            name="l2", make=lambda: tp.importance.MagnitudeImportance(p=2), description="L2 norm"
        ),
        Criterion(
            name="taylor",
            make=tp.importance.TaylorImportance,
            needs="grad",
            description="first-order Taylor on the adversarial loss",
        ),
        Criterion(name="fpgm", make=tp.importance.FPGMImportance, description="geometric median"),
        Criterion(
            name="lamp", make=tp.importance.LAMPImportance, description="layer-adaptive magnitude"
        ),
        Criterion(name="bn_scale", make=tp.importance.BNScaleImportance, description="|BN gamma|"),
        Criterion(
            name="hessian",
            make=tp.importance.HessianImportance,
            needs="per_sample_grad",
            description="OBD diagonal Hessian of the adversarial loss",
        ),
    )
}


def get_criterion(name: str) -> Criterion:
    try:
        return CRITERIA[name]
    except KeyError:
        raise ValueError(f"criterion: unknown {name!r}; allowed: {', '.join(CRITERIA)}") from None
