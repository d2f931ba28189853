"""The private members robprune uses, by owner, and the check that they exist."""

from __future__ import annotations

from typing import Any

import optuna
import ray
from ray.train import CheckpointConfig
from ray.train._internal import session
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.train._internal.storage import StorageContext
from ray.tune.experiment.trial import Trial, _TrainingRunMetadata

__all__ = ["TESTED_WITH", "InternalsMissing", "check_tune_internals", "require"]

#: The versions these members were read from and tested with.
TESTED_WITH = {"ray": "2.60.0", "optuna": "5.0.0"}

_SEARCH_MEMBERS = ("_ot_trials", "_ot_study", "_storage", "_study_name", "_sampler")
_SEARCH_MEMBERS += ("_completed_trials",)
_TRIAL_METHODS = ("from_json_state", "restore_run_metadata", "get_json_state")
_TRIAL_METHODS += ("invalidate_json_state", "set_status")
_METADATA_MEMBERS = ("checkpoint_manager", "last_result", "invalidate_cache")
_METADATA_MEMBERS += ("error_filename", "pickled_error_filename")
_MANAGER_MEMBERS = ("_checkpoint_results", "_latest_checkpoint_result", "_checkpoint_config")


class InternalsMissing(RuntimeError):
    """A Ray or Optuna member robprune relies on is gone (another version than tested)."""


def require(obj: Any, owner: str, names: tuple[str, ...]) -> None:
    missing = [n for n in names if not hasattr(obj, n)]
    if missing:
        raise InternalsMissing(
            f"{owner}.{missing[0]} is missing: robprune relies on this private member, tested "
            f"with ray {TESTED_WITH['ray']} and optuna {TESTED_WITH['optuna']} (installed: ray "
            f"{ray.__version__}, optuna {optuna.__version__}); install the tested versions"
        )


def check_tune_internals() -> None:
    """Raise InternalsMissing (one line) unless every Tune/Optuna member used here exists."""
    require(session, "ray.train._internal.session", ("_TrainingResult",))
    require(StorageContext, "ray.train StorageContext", ("_update_checkpoint_index",))
    require(Trial, "ray.tune Trial", _TRIAL_METHODS)
    require(_TrainingRunMetadata(), "ray.tune Trial.run_metadata", _METADATA_MEMBERS)
    manager = _CheckpointManager(checkpoint_config=CheckpointConfig())
    require(manager, "ray.train _CheckpointManager", _MANAGER_MEMBERS)
    frozen = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL)
    require(frozen, "optuna FrozenTrial", ("_trial_id",))
