"""Channel-importance criteria, keyed by name, each a Torch-Pruning importance.

`needs` says what the criterion must see before `pruner.step()`: Taylor needs gradients of the
adversarial loss in `.grad`, Hessian needs per-sample gradients accumulated into the scorer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch_pruning as tp
from torch import nn

from robprune.config import names
from robprune.config.names import check_registry

__all__ = ["Criterion", "CRITERIA", "get_criterion"]


@dataclass(frozen=True, kw_only=True)
class Criterion:
    name: str
    make: Callable[[], tp.importance.Importance]
    needs: Literal["nothing", "grad", "per_sample_grad"] = "nothing"
    description: str = ""


class _HessianImportance(tp.importance.HessianImportance):
    """Torch-Pruning's OBD importance with per-sample squared gradients really summed.

    Torch-Pruning 1.6.0's `accumulate_grad` tests `name not in self._accu_grad` on a dict keyed
    by the parameter, so every sample overwrites the sum: the "Hessian" was the last sample's
    squared gradient. Here the sum and the count are kept per parameter as documented.
    """

    def accumulate_grad(self, model: nn.Module) -> None:
        for param in model.parameters():
            if param.grad is None:
                continue
            square = param.grad.detach().pow(2)
            if param in self._accu_grad:
                self._accu_grad[param] += square
                self._counter[param] += 1
            else:
                self._accu_grad[param] = square.clone()
                self._counter[param] = 1


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
            # Torch-Pruning 1.6.0's Taylor scores conv/linear weights only: its normalisation-
            # layer branch tests for GroupNorm, so BatchNorm scales do not enter the sum.
            description="first-order Taylor on the adversarial loss (conv/linear weights)",
        ),
        Criterion(name="fpgm", make=tp.importance.FPGMImportance, description="geometric median"),
        Criterion(
            name="lamp",
            make=tp.importance.LAMPImportance,
            # LAMP's normalisation is monotone inside a group, so under per-group ratios (both
            # of our ratio rules) it keeps exactly the channels `l2` keeps (tests/test_pruning).
            # Torch-Pruning's *group* LAMP: squared L2 norms averaged over the group's coupled
            # parameters, LAMP-normalised over the group's channels; not Lee et al.'s
            # per-weight, per-layer LAMP.
            description="group LAMP (Torch-Pruning's LAMPImportance, not Lee et al.'s "
            "per-layer LAMP); with per-group ratios it ranks as l2",
        ),
        Criterion(
            name="lamp_layer",
            make=lambda: tp.importance.GroupMagnitudeImportance(
                p=2, group_reduction="first", normalizer="lamp"
            ),
            # the layer-wise reading: LAMP's normalisation of the root layer's own squared
            # filter norms (Lee et al. score one layer's weights; this is its structured form)
            description="layer-wise LAMP on the root layer's squared filter norms; with "
            "per-group ratios it ranks by those norms",
        ),
        Criterion(name="bn_scale", make=tp.importance.BNScaleImportance, description="|BN gamma|"),
        Criterion(
            name="hessian",
            make=_HessianImportance,
            needs="per_sample_grad",
            description="OBD diagonal Hessian of the adversarial loss",
        ),
    )
}
check_registry("criterion", names.CRITERIA, CRITERIA)


def get_criterion(name: str) -> Criterion:
    try:
        return CRITERIA[name]
    except KeyError:
        raise ValueError(f"criterion: unknown {name!r}; allowed: {', '.join(CRITERIA)}") from None
