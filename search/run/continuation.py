"""A run rebuilt from robprune's records continues its unfinished trials where they stopped.

When Tune's snapshot of a run is missing, cut short or cannot be restored, the run starts as a
new Tune run in the same directory. The Optuna journal still holds the run's unfinished trials
(RUNNING, each naming the Tune trial that ran it). The searcher hands each of them out again
before asking Optuna for anything new (`orphans`): the same Optuna trial, so the same
configuration, now linked to the new Tune trial, with `CONTINUE_KEY` in its config naming the
old trial's directory. The trainable continues from that directory's newest whole checkpoint
(`search/run/resume_point.py`), as a restored trial would; one without a checkpoint starts at
epoch 0.
Finished trials are not run again: their end markers and checkpoints are what the export reads.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import optuna

from search.run.study import RUN_ATTR, TUNE_TRIAL_ATTR

__all__ = ["CONTINUE_KEY", "CONTINUED_ATTR", "orphans", "relink"]

#: Key of Tune's trial config: {"trial_dir_name": ...} of the trial this one continues.
CONTINUE_KEY = "continue_from"
#: Optuna user attribute: the Tune trial ids that ran this Optuna trial before, in order.
CONTINUED_ATTR = "continued_from"


def orphans(study: Any, run: str, linked: Container[str]) -> list[Any]:
    """Unfinished Optuna trials of `run` whose Tune trial this searcher does not know."""

    running = (optuna.trial.TrialState.RUNNING,)
    out = []
    for frozen in study.get_trials(deepcopy=False, states=running):
        attrs = frozen.user_attrs
        tune_trial = attrs.get(TUNE_TRIAL_ATTR)
        if attrs.get(RUN_ATTR) == run and tune_trial is not None and tune_trial not in linked:
            out.append(frozen)
    return out


def relink(ot_trial: Any, frozen: Any, trial_id: str) -> dict[str, Any]:
    """Link the Optuna trial to the new Tune trial; returns the config entry to add."""
    earlier = frozen.user_attrs[TUNE_TRIAL_ATTR]
    ot_trial.set_user_attr(CONTINUED_ATTR, [*frozen.user_attrs.get(CONTINUED_ATTR, []), earlier])
    ot_trial.set_user_attr(TUNE_TRIAL_ATTR, trial_id)
    return {CONTINUE_KEY: {"trial_dir_name": f"trial_{earlier}"}}
