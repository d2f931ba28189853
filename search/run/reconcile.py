"""Resume reconciliation: Tune's snapshot brought in line with the durable record.

A killed driver leaves three records that disagree: Tune's experiment snapshot (saved every few
seconds, so possibly stale), the trials' own directories (checkpoints, `final/result.json`, and
the end marker this module's callback writes the moment a trial ends), and the Optuna journal
(written at once on every ask and tell). Before `Tuner.restore` runs anything, each trial is
classified from the durable record, never from the snapshot alone:

- **finished** (snapshot says so, an end marker, a `final/` checkpoint, or Optuna has finished
  it): marked TERMINATED or ERROR in the snapshot with its last checkpoint, so Tune never runs
  it again; an Optuna trial still RUNNING for it is told its result once, here.
- **resumable** (unfinished, with checkpoints): the newest checkpoint on storage is registered,
  also when the snapshot predates it, so Tune continues after the last saved epoch.
- **never started** (an Optuna trial asked for a Tune trial that the snapshot does not know):
  FAILed in Optuna with the reason in its `fail_reason` user attribute. Tune's own search
  state was saved with the snapshot, so it hands that sample out again as a new trial.

The searcher (`search.searcher.StudySearch`) also refuses to report to a finished Optuna trial,
so no code path reports to one twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs
from ray import tune

from search.spec.model import Spec
from search.state.experiment import Experiment, Segment
from search.state.trial_files import FINAL_DIR, RESULT_FILE, final_report

__all__ = ["END_MARKER", "EndMarkerCallback", "Reconciled", "reconcile_run"]

#: Written into a trial's directory by the driver when the trial ends (TERMINATED or ERROR).
END_MARKER = "robprune-end.json"
NEVER_STARTED = (
    "never started: asked just before the driver stopped, before Tune saved the trial; "
    "Tune hands the sample out again as a new trial"
)
_CHECKPOINT = re.compile(r"^checkpoint_(\d+)$")
_STATE = re.compile(r"^experiment_state-.*\.json$")
_KEPT_METRICS = ("epoch", "epochs_completed", "robust_acc", "clean_acc", "train_loss")


def _fs(exp: Experiment, run: str) -> tuple[pafs.FileSystem, str]:
    path, fs = exp.tune_storage(run)
    return (fs or pafs.LocalFileSystem()), path


def _read(fs: pafs.FileSystem, path: str) -> str | None:
    try:
        if fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with fs.open_input_stream(path) as handle:
            return handle.read().decode()
    except (OSError, UnicodeDecodeError):
        return None


def _listing(fs: pafs.FileSystem, path: str) -> list[pafs.FileInfo]:
    try:
        return fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError:
        return []


class EndMarkerCallback(tune.Callback):
    """Records in the trial's directory that it ended, the moment Tune decides it.

    Tune's snapshot may be seconds old when the driver dies; the marker is the durable record
    that a trial finished (including one stopped early by ASHA, which has no `final/`).
    """

    def __init__(self, location: str, run: str, metrics: list[str]):
        self.location = location
        self.run = run
        self.metrics = list(metrics)
        self._exp: Experiment | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_exp": None}

    def _write(self, trial: Any, status: str) -> None:
        if self._exp is None:
            self._exp = Experiment(self.location)
        last = trial.last_result or {}
        keep = {*self.metrics, *_KEPT_METRICS}
        result = {k: v for k, v in last.items() if k in keep and isinstance(v, int | float)}
        payload = json.dumps({"status": status, "result": result}, sort_keys=True) + "\n"
        try:
            rel = f"tune/{self.run}/{trial.storage.trial_dir_name}/{END_MARKER}"
            self._exp.write_text(rel, payload)
        except OSError as exc:  # a marker is a safeguard; the search itself goes on
            print(f"warning: could not record the end of {trial.trial_id}: {exc}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, "TERMINATED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._write(trial, "ERROR")


@dataclass(kw_only=True)
class Reconciled:
    """What reconciliation decided for one run; printed before the run resumes."""

    run: str
    finished: list[str] = field(default_factory=list)  # marked finished from the record
    resumed: dict[str, str] = field(default_factory=dict)  # trial -> newer checkpoint
    told: list[int] = field(default_factory=list)  # Optuna trials told their result here
    never_started: list[int] = field(default_factory=list)  # Optuna trials FAILed

    def describe(self) -> str:
        parts = []
        if self.finished:
            parts.append(f"{len(self.finished)} finished before the stop (kept, not rerun)")
        if self.resumed:
            parts.append(f"{len(self.resumed)} continue from a newer checkpoint than Tune saved")
        if self.told:
            parts.append(f"{len(self.told)} results recorded in Optuna")
        if self.never_started:
            parts.append(f"{len(self.never_started)} Optuna trials never started (failed)")
        return f"reconciled {self.run}: " + ("; ".join(parts) if parts else "nothing to fix")


def _index(name: str) -> int:
    match = _CHECKPOINT.match(name)
    return int(match.group(1)) if match else -1


@dataclass(kw_only=True)
class _Record:
    """What a trial's directory says about it."""

    checkpoints: list[str]  # names, oldest first
    final: str | None  # the checkpoint holding final/result.json
    marker: dict[str, Any] | None
    rows: list[dict[str, Any]]  # Tune's result.json rows that could be read


def _record(fs: pafs.FileSystem, trial_dir: str) -> _Record:
    names = sorted(
        (i.base_name for i in _listing(fs, trial_dir) if _CHECKPOINT.match(i.base_name)),
        key=_index,
    )
    final = next(
        (n for n in reversed(names) if _read(fs, f"{trial_dir}/{n}/{FINAL_DIR}/{RESULT_FILE}")),
        None,
    )
    marker_text = _read(fs, f"{trial_dir}/{END_MARKER}")
    try:
        marker = json.loads(marker_text) if marker_text else None
    except json.JSONDecodeError:
        marker = None
    rows = []
    for line in (_read(fs, f"{trial_dir}/result.json") or "").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # cut short by the kill
    return _Record(checkpoints=names, final=final, marker=marker, rows=rows)


def _register(trial: Any, name: str, rows: list[dict[str, Any]]) -> None:
    """Make checkpoint `name` the trial's latest, as Tune's own bookkeeping would."""
    from ray.train._internal.session import _TrainingResult

    metrics = next((r for r in reversed(rows) if r.get("checkpoint_dir_name") == name), None)
    metrics = dict(metrics or {"checkpoint_dir_name": name})
    path = f"{trial.storage.trial_fs_path}/{name}"
    result = _TrainingResult(
        checkpoint=tune.Checkpoint(path, filesystem=trial.storage.storage_filesystem),
        metrics=metrics,
    )
    manager = trial.run_metadata.checkpoint_manager
    manager._checkpoint_results.append(result)
    manager._latest_checkpoint_result = result
    trial.storage._update_checkpoint_index(metrics)
    if len(metrics) > 1:
        trial.run_metadata.last_result = metrics
    trial.run_metadata.invalidate_cache()
    trial.invalidate_json_state()


def _values(spec: Spec, metrics: dict[str, Any]) -> list[float] | None:
    values = [metrics.get(o.metric) for o in spec.search.objectives]
    if any(not isinstance(v, int | float) or v != v for v in values):
        return None
    return [float(v) for v in values]


def _final_metrics(fs: pafs.FileSystem, trial_dir: str, record: _Record) -> dict[str, Any]:
    """The metrics of the trial's last report, from the most durable source there is."""
    if record.final:
        text = _read(fs, f"{trial_dir}/{record.final}/{FINAL_DIR}/{RESULT_FILE}")
        try:
            payload = json.loads(text or "")
            epochs = payload.get("epochs") or []
            return final_report(payload, epochs[-1] if epochs else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    if record.marker and record.marker.get("result"):
        return dict(record.marker["result"])
    return dict(record.rows[-1]) if record.rows else {}


class _Study:
    """The experiment's Optuna study, read once; tells go straight to the journal."""

    def __init__(self, spec: Spec, exp: Experiment, run: str):
        self.study = None
        self.by_tune: dict[str, Any] = {}
        self.run_trials: list[Any] = []
        if spec.search.mode == "grid" or not exp.journal_path.exists():
            return
        import optuna

        from search.run.searcher import RUN_ATTR, TUNE_TRIAL_ATTR, open_storage

        try:
            self.study = optuna.load_study(
                study_name=exp.study_name, storage=open_storage(exp.journal_path)
            )
        except KeyError:
            return
        for trial in self.study.get_trials(deepcopy=False):
            if trial.user_attrs.get(RUN_ATTR) == run:
                self.run_trials.append(trial)
                self.by_tune[trial.user_attrs.get(TUNE_TRIAL_ATTR)] = trial

    def tell(self, number: int, values: list[float] | None, why: str) -> None:
        """COMPLETE with `values`, or FAIL (values None); `why` goes into a user attribute."""
        import optuna

        assert self.study is not None
        frozen = next(t for t in self.run_trials if t.number == number)
        attr = "fail_reason" if values is None else "reconciled"
        optuna.trial.Trial(self.study, frozen._trial_id).set_user_attr(attr, why)
        if values is None:
            self.study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(number, values if len(values) > 1 else values[0])


def _classify(status: str, record: _Record, ot_trial: Any) -> str | None:
    """The trial's terminal status according to the durable record, or None if unfinished."""
    if status in ("TERMINATED", "ERROR"):
        return status
    if record.marker and record.marker.get("status") in ("TERMINATED", "ERROR"):
        return str(record.marker["status"])
    if record.final:
        return "TERMINATED"
    if ot_trial is not None and ot_trial.state.is_finished():
        return "ERROR" if ot_trial.state.name == "FAIL" else "TERMINATED"
    return None


def reconcile_run(spec: Spec, exp: Experiment, segment: Segment) -> Reconciled:
    """Fix the newest Tune snapshot of `segment` and the Optuna journal in place (see above)."""
    from ray.tune.experiment.trial import Trial

    out = Reconciled(run=segment.name)
    fs, run_path = _fs(exp, segment.name)
    study = _Study(spec, exp, segment.name)
    states = sorted(i.base_name for i in _listing(fs, run_path) if _STATE.match(i.base_name))
    known: set[str] = set()
    if states:
        state_path = f"{run_path}/{states[-1]}"
        data = json.loads(_read(fs, state_path) or "{}")
        changed = False
        for pair in data.get("trial_data", []):
            trial = Trial.from_json_state(pair[0], stub=True)
            trial.restore_run_metadata(pair[1])
            trial.stub = False
            known.add(trial.trial_id)
            if _reconcile_trial(spec, fs, run_path, trial, study, out):
                trial.invalidate_json_state()
                pair[0], pair[1] = trial.get_json_state()
                changed = True
        if changed:
            _write_atomic(fs, state_path, json.dumps(data))
    if study.study is not None:
        for ot_trial in study.run_trials:
            from search.run.searcher import TUNE_TRIAL_ATTR

            tune_id = ot_trial.user_attrs.get(TUNE_TRIAL_ATTR)
            if ot_trial.state.name == "RUNNING" and tune_id not in known:
                study.tell(ot_trial.number, None, NEVER_STARTED)
                out.never_started.append(ot_trial.number)
    return out


def _reconcile_trial(
    spec: Spec, fs: pafs.FileSystem, run_path: str, trial: Any, study: _Study, out: Reconciled
) -> bool:
    """Decide one snapshot trial; returns whether its snapshot entry changed."""
    trial_dir = f"{run_path}/{trial.storage.trial_dir_name}"
    record = _record(fs, trial_dir)
    ot_trial = study.by_tune.get(trial.trial_id)
    terminal = _classify(trial.status, record, ot_trial)
    changed = False
    current = trial.checkpoint
    current_index = _index(current.path.rstrip("/").rsplit("/", 1)[-1]) if current else -1
    newest = record.final if terminal and record.final else None
    newest = newest or (record.checkpoints[-1] if record.checkpoints else None)
    if newest is not None and _index(newest) > current_index:
        _register(trial, newest, record.rows)
        if terminal is None:
            out.resumed[trial.trial_id] = newest
        changed = True
    if terminal is not None and trial.status != terminal:
        if terminal == "ERROR":  # Tune's own error files, where it wrote them before the stop
            names = {i.base_name for i in _listing(fs, trial_dir)}
            if "error.txt" in names:
                trial.run_metadata.error_filename = "error.txt"
            if "error.pkl" in names:
                trial.run_metadata.pickled_error_filename = "error.pkl"
        trial.set_status(terminal)
        out.finished.append(trial.trial_id)
        changed = True
    if terminal is not None and ot_trial is not None and ot_trial.state.name == "RUNNING":
        values = None
        if terminal == "TERMINATED":
            values = _values(spec, _final_metrics(fs, trial_dir, record))
        why = f"{terminal} in Tune's record, told on resume"
        study.tell(ot_trial.number, values, why)
        out.told.append(ot_trial.number)
    return changed


def _write_atomic(fs: pafs.FileSystem, path: str, text: str) -> None:
    """Temporary file and rename where the filesystem can (local); one PUT on object stores."""
    if isinstance(fs, pafs.LocalFileSystem):
        from robprune.io.atomic import atomic_write_text

        atomic_write_text(text, path)
        return
    with fs.open_output_stream(path) as handle:
        handle.write(text.encode())
