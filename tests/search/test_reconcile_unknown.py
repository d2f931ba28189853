"""A RUNNING Optuna trial whose Tune trial the restored snapshot does not know
(search.run.reconcile.settle_unknown).

Tune's snapshot is saved every few seconds, so a trial can finish after it; on object storage
the driver can then die after the trial's `final/` checkpoint reached the bucket and before
the journal holding its tell did. That trial is finished, not "never started": failing it made
the searcher ask once more, and a killed search on S3 ended with one trial too many (201 of
200, the export reading the finished trial from its directory).
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pyarrow.fs as pafs

from search.run.end_marker import END_MARKER
from search.run.reconcile import Reconciled, _Study, settle_unknown
from search.run.study import (
    FAIL_REASON_ATTR,
    NEVER_STARTED,
    RUN_ATTR,
    TUNE_TRIAL_ATTR,
    open_storage,
)
from search.spec.parse import parse_spec
from search.state.trial_files import FINAL_DIR, RESULT_FILE

RUN = "run-000"


def _spec(tmp_path: Path):
    raw = {
        "name": "u",
        "data": {"dataset": "digits"},
        "model": {"arch": "digits_cnn"},
        "prune": {"sparsity": {"uniform": [0.1, 0.9]}},
        "finetune": {"method": "ce", "epochs": 2},
        "search": {"mode": "optimize", "num_samples": 4},
    }
    return parse_spec(raw, name="u", storage=str(tmp_path / "unused"))


def _study(tmp_path: Path, tune_ids: list[str]) -> _Study:
    """The run's Optuna study with one RUNNING trial per Tune id, as the driver asked them."""
    storage = open_storage(tmp_path / "optuna" / "journal.log")
    study = optuna.create_study(study_name="u", storage=storage, direction="maximize")
    for tune_id in tune_ids:
        trial = study.ask()
        trial.suggest_float("sparsity", 0.1, 0.9)
        trial.set_user_attr(TUNE_TRIAL_ATTR, tune_id)
        trial.set_user_attr(RUN_ATTR, RUN)
    held = _Study.__new__(_Study)
    held.study = study
    held.run_trials = study.get_trials(deepcopy=False)
    held.by_tune = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in held.run_trials}
    return held


def _final_checkpoint(trial_dir: Path, robust_acc: float) -> None:
    """What a trial that ended leaves on storage before the driver writes its end marker."""
    final = trial_dir / "checkpoint_000001" / FINAL_DIR
    final.mkdir(parents=True)
    epochs = [{"epoch": 1, "clean_acc": 0.8, "robust_acc": robust_acc, "train_loss": 0.5}]
    payload = {"metrics": {"epochs_completed": 1}, "epochs": epochs}
    (final / RESULT_FILE).write_text(json.dumps(payload))


def test_a_trial_finished_after_the_snapshot_is_told_not_failed(tmp_path):
    run_path = tmp_path / "tune" / RUN
    _final_checkpoint(run_path / "trial_done", robust_acc=0.42)
    (run_path / "trial_begun" / "checkpoint_000000").mkdir(parents=True)  # one epoch, no more
    spec, study = _spec(tmp_path), _study(tmp_path, ["done", "begun", "unseen"])
    out = Reconciled(run=RUN)
    fs = pafs.LocalFileSystem()
    for trial in study.run_trials:
        settle_unknown(spec, fs, str(run_path), study, trial, out)

    trials = {t.user_attrs[TUNE_TRIAL_ATTR]: t for t in study.study.get_trials()}
    assert trials["done"].state == optuna.trial.TrialState.COMPLETE
    assert trials["done"].value == 0.42
    marker = json.loads((run_path / "trial_done" / END_MARKER).read_text())
    assert marker["status"] == "TERMINATED" and marker["result"]["robust_acc"] == 0.42
    for unfinished in ("begun", "unseen"):  # asked again by the searcher, as before
        assert trials[unfinished].state == optuna.trial.TrialState.FAIL
        assert trials[unfinished].user_attrs[FAIL_REASON_ATTR] == NEVER_STARTED
    assert out.told == [trials["done"].number] and out.marked == ["done"]
    assert out.never_started == [trials["begun"].number, trials["unseen"].number]
