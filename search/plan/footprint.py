"""How much a search will write to its storage, for the check before it starts.

Not a forecast to the byte: an upper-side estimate from the model's size (every trial keeps
two epoch checkpoints and a final one, each with the weights, the optimizer's momentum and
the pruned model) plus the dense models, logs and tables, with a margin. A search whose
storage has less room than this is refused before anything is written.
"""

from __future__ import annotations

from typing import Any

from search.finalists.rules import planned_trials
from search.plan.count import sample_configs
from search.plan.workload import data_shape

__all__ = ["estimate_bytes", "MARGIN"]

MARGIN = 1.5
_PER_TRIAL_FIXED = 1 << 20  # result rows, progress files, events, Tune's logs
_FIXED = 16 << 20  # the experiment's own files, the journal, the tables
_COPIES_PER_CHECKPOINT = 3  # weights, momentum, the pruned model of the final one
_CHECKPOINTS = 3  # the newest two epoch ones and the final one (search.run.checkpoint_keep)


def _model_bytes(spec: Any) -> int:
    """Bytes of one float32 copy of the (dense) model of the spec's first configuration."""
    try:
        from robprune.models import create_model  # torch: only when this estimate is made

        config = sample_configs(spec, n=1)[0]
        shape = data_shape(config)
        model = create_model(  # built on the CPU (a fraction of a second, no training)
            config.model.arch,
            num_classes=shape.classes,
            input_shape=shape.shape,
            mean=(0.0,) * shape.shape[0],
            std=(1.0,) * shape.shape[0],
            width=config.model.width,
        )
        return 4 * sum(p.numel() for p in model.parameters())
    except Exception:  # noqa: BLE001 - an estimate: a model that cannot be built counts 4 MiB
        return 4 << 20


def estimate_bytes(spec: Any) -> int:
    """What the search will write at most, with the margin."""
    model = _model_bytes(spec)
    per_trial = _CHECKPOINTS * _COPIES_PER_CHECKPOINT * model + _PER_TRIAL_FIXED
    dense = 2 * model
    return int(MARGIN * (planned_trials(spec) * per_trial + dense + _FIXED))
