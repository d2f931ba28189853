"""One trial end to end: dense -> MRS -> ratios -> prune -> fine-tune -> evaluate.

Plain PyTorch, no Ray: the search wraps `run_trial` and gives it an `on_epoch` callback that
reports metrics and saves checkpoints; a trial given such a checkpoint continues after it.
Model selection is on the validation split carved from training data; the test split is
evaluated once, at the end.

One job per module: `builders` (data, network and trainer from config sections), `dense`
(the dense model, trained once and cached), `records` (what a trial returns and reports),
`subsets` (which examples each measurement sees), `prepare` (dense model, MRS, pruning),
`checkpoint` (saving and loading a trial between epochs), `finetune` (the epoch loop),
`metrics` (the final evaluation and the metric columns), `run` (the order of the stages).
"""

from __future__ import annotations

from robprune.trial.checkpoint import CHECKPOINT_FILE
from robprune.trial.records import EpochReport, TrialResult
from robprune.trial.run import run_trial

__all__ = ["EpochReport", "TrialResult", "run_trial", "CHECKPOINT_FILE"]
