"""Every private member of Ray Tune and Optuna that robprune touches, in one package.

Its public face is this module; the members checked and the check are in `_members`, the
searcher in `_searcher`, Optuna tells and edits of Tune's snapshot in `_records`, the snapshot's
trials without their results in `_analysis`.

Tested with ray 2.60.0 and optuna 5.0.0 (the versions pyproject.toml pins). A Ray or Optuna
that renamed one of these members fails at construction (`StudySearch(...)`,
`reconcile_run`) with one line naming the member and these versions, not deep inside a run.

What needs them and why:

- `StudySearch` subclasses Ray's `OptunaSearch` (its `_ot_trials`, `_ot_study`, `_storage`,
  `_study_name`, `_sampler`, `_completed_trials`) so that the study lives in the experiment's
  journal and survives moving: the study and its open trials are pickled by name and id, and
  reopened where the journal is now.
- Optuna's `Trial(study, frozen._trial_id)` opens a trial that another process asked, to set
  a user attribute on it (`fail_trial`, `tell_trial`).
- The reconciliation before a resume (search.run.reconcile) edits Tune's experiment snapshot:
  `Trial.from_json_state`/`get_json_state`, the trial's `run_metadata`, its checkpoint manager
  (`_checkpoint_results`, `_latest_checkpoint_result`), `StorageContext._update_checkpoint_index`
  and `ray.train._internal.session._TrainingResult`. The one exception, checked here too:
  `search.run.checkpoint_keep` cuts each trial's `_checkpoint_results` to the ones kept.
- `grid_generator` sets Tune's grid generator's `_uuid_prefix`: a grid run's trial ids are
  then the same in a run rebuilt from the records, whose trials find their own folders.
- `renew_run_config` replaces a restored Tuner's run configuration (`Tuner._local_tuner`):
  Tune pickles the callbacks and the checkpoint settings with the experiment, and a restored
  run would otherwise write to where the experiment was made (a moved experiment) and miss
  what a newer robprune adds. `search.run.checkpoint_keep` also switches off the checkpoint
  deletion of trials restored from an older snapshot (their manager's `_checkpoint_config`).
- `SnapshotTrials` overrides `ExperimentAnalysis._fetch_trial_dataframes` (and
  `restore_reads_no_results` swaps it into `tuner_internal` for a restore): Tune's snapshot is
  read for its trials without every trial's `result.json`, which neither the export nor a
  restore followed by `fit()` uses (`_analysis`).
"""

from __future__ import annotations

from typing import Any

from ray.tune.search import BasicVariantGenerator

from search.run.tune_internals._analysis import SnapshotTrials, restore_reads_no_results
from search.run.tune_internals._members import (
    TESTED_WITH,
    InternalsMissing,
    check_tune_internals,
    require,
)
from search.run.tune_internals._records import (
    fail_trial,
    finalize_study,
    record_error_files,
    register_checkpoint,
    snapshot_entry,
    snapshot_trial,
    tell_trial,
)
from search.run.tune_internals._searcher import StudySearch

__all__ = [
    "TESTED_WITH",
    "InternalsMissing",
    "check_tune_internals",
    "StudySearch",
    "fail_trial",
    "tell_trial",
    "finalize_study",
    "snapshot_trial",
    "snapshot_entry",
    "register_checkpoint",
    "record_error_files",
    "grid_generator",
    "renew_run_config",
    "SnapshotTrials",
    "restore_reads_no_results",
]

# pickled searchers (Tune's searcher state) name the class where it always was
StudySearch.__module__ = __name__


def grid_generator(*, max_concurrent: int, prefix: str) -> Any:
    """Tune's grid generator with trial ids `PREFIX_00000`, ... (Tune draws the prefix at
    random): the same cell gets the same id, hence the same folder, in every rebuild."""

    generator = BasicVariantGenerator(max_concurrent=max_concurrent)
    require(generator, "ray.tune BasicVariantGenerator", ("_uuid_prefix",))
    generator._uuid_prefix = f"{prefix}_"
    return generator


def renew_run_config(tuner: Any, *, callbacks: list[Any], checkpoint_config: Any) -> None:
    """Give a restored Tuner this robprune's callbacks and checkpoint settings, built for
    where the experiment is now (Tune restores the ones pickled where it was made)."""
    require(tuner, "ray.tune Tuner", ("_local_tuner",))
    run_config = tuner._local_tuner.get_run_config()
    run_config.callbacks = callbacks
    run_config.checkpoint_config = checkpoint_config
