"""Which trials repeat a configuration (`search.dedupe`): the record both sides share.

The searcher (`search.run.tune_internals.StudySearch`) marks a suggested configuration equal
to one already finished or running as a repeat of it; the trainable (`search.run.repeat_answer`)
answers it from the original; the export writes `repeat_of`. The link lives in Tune's trial
config (`REPEAT_KEY`) and in the Optuna journal (user attributes), so originals are known again
after a restart and across `--extend` runs. Why and how: docs/plan.md.
"""

from __future__ import annotations

from typing import Any

from search.spec.trial import config_key

__all__ = [
    "REPEAT_KEY",
    "REPLAY_FILE",
    "CONFIG_KEY_ATTR",
    "REPEAT_ATTR",
    "config_key",
    "Originals",
]

#: Key of Tune's trial config naming the original: {"trial_id": ..., "run": ...}.
REPEAT_KEY = "repeat_of"
#: Written into a repeat's checkpoint when it was answered from its original (not trained):
#: the export marks `repeat_of` from it, so a repeat that trained itself (its original
#: failed) is a row of its own.
REPLAY_FILE = "repeat_of.json"
#: Optuna user attributes: the configuration's key, and the original's Tune trial id.
CONFIG_KEY_ATTR = "config_key"
REPEAT_ATTR = "repeat_of"


class Originals:
    """Configuration key -> (Tune trial id, run) of the first trial of that configuration."""

    def __init__(self) -> None:
        self.by_key: dict[str, tuple[str, str]] = {}

    def load(self, study: Any, *, trial_attr: str, run_attr: str) -> None:
        """Originals recorded in the Optuna journal (finished or running, not failed)."""
        import optuna

        states = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.PRUNED,
            optuna.trial.TrialState.RUNNING,
        )
        for frozen in study.get_trials(deepcopy=False, states=states):
            attrs = frozen.user_attrs
            key, tid = attrs.get(CONFIG_KEY_ATTR), attrs.get(trial_attr)
            if key and tid and REPEAT_ATTR not in attrs:
                self.by_key.setdefault(key, (tid, attrs.get(run_attr, "")))

    def claim(self, key: str, trial_id: str, run: str) -> tuple[str, str] | None:
        """The original of `key` if there is one, else record `trial_id` as it."""
        found = self.by_key.get(key)
        if found is not None and found[0] != trial_id:
            return found
        self.by_key[key] = (trial_id, run)
        return None

    def adopt(self, key: str, trial_id: str, run: str) -> None:
        """A repeat that trained itself (its original failed) answers the next ones, unless
        the configuration has an original again."""
        self.by_key.setdefault(key, (trial_id, run))

    def forget(self, trial_id: str) -> None:
        """An original that failed is no answer: the configuration's next trial trains."""
        self.by_key = {k: v for k, v in self.by_key.items() if v[0] != trial_id}

    def __len__(self) -> int:
        return len(self.by_key)
