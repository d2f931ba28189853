"""Resume reconciliation: Tune's snapshot brought in line with the durable record.

A killed driver leaves three records that disagree: Tune's experiment snapshot (saved every few
seconds, so possibly stale), the trials' own directories (checkpoints, `final/result.json`, and
the end marker `search.run.end_marker` writes the moment a trial ends), and the Optuna journal
(written at once on every ask and tell). Before `Tuner.restore` runs anything, each trial is
classified from the durable record, never from the snapshot alone:

- **finished** (snapshot says so, an end marker, a `final/` checkpoint, or Optuna has finished
  it): marked TERMINATED or ERROR in the snapshot with its last checkpoint, so Tune never runs
  it again; an Optuna trial still RUNNING for it is told its result once, here.
- **resumable** (unfinished, with checkpoints): the newest checkpoint on storage is registered,
  also when the snapshot predates it, so Tune continues after the last saved epoch.
- **never started** (an Optuna trial asked for a Tune trial that the snapshot does not know,
  and whose directory does not finish it): FAILed in Optuna with the reason in its
  `fail_reason` user attribute. It does not count towards the run's planned trials, so the
  searcher asks for a new trial in its place. One the directory finishes (the snapshot
  predates it) is told its result instead (`settle_unknown`).

The searcher (`search.run.tune_internals.StudySearch`) also refuses to report to a finished
Optuna trial, so no code path reports to one twice. Tune's and Optuna's private members are
reached through `search.run.tune_internals` only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import optuna
import pyarrow.fs as pafs

from search.run import tune_internals as internals
from search.run.end_marker import END_MARKER, EndMarkerCallback, marker_text
from search.run.repeat_answer import orphan_repeats
from search.run.study import NEVER_STARTED, RUN_ATTR, TUNE_TRIAL_ATTR, open_storage
from search.run.trial_record import TrialRecord, read_record, read_records
from search.run.tune_state import (
    STATE_FILE,
    grid_generator_disagrees,
    reopen_search,
    repair_run_state,
    set_aside_snapshot,
    settle_grid_generator,
)
from search.spec.model import Spec
from search.state import storage
from search.state.checkpoints import checkpoint_index
from search.state.experiment import Experiment, Segment
from search.state.trial_files import FINAL_DIR, RESULT_FILE, final_report

__all__ = ["END_MARKER", "EndMarkerCallback", "Reconciled", "reconcile_run"]  # two re-exported


def _fs(exp: Experiment, run: str) -> tuple[pafs.FileSystem, str]:
    path, fs = storage.tune_storage(exp, run)
    return (fs or pafs.LocalFileSystem()), path


@dataclass(kw_only=True)
class Reconciled:
    """What reconciliation decided for one run; printed before the run resumes."""

    run: str
    finished: list[str] = field(default_factory=list)  # marked finished from the record
    resumed: dict[str, str] = field(default_factory=dict)  # trial -> newer checkpoint
    told: list[int] = field(default_factory=list)  # Optuna trials told their result here
    never_started: list[int] = field(default_factory=list)  # Optuna trials FAILed
    set_aside: list[str] = field(default_factory=list)  # Tune state files cut short by a kill
    dropped: list[str] = field(default_factory=list)  # Tune trials the journal never recorded
    marked: list[str] = field(default_factory=list)  # end markers written from another record
    orphans: list[str] = field(default_factory=list)  # repeats whose original left the run
    continued: list[str] = field(default_factory=list)  # rebuilt run: continued by new trials
    released: list[str] = field(default_factory=list)  # grid slots held by ended trials
    restorable: bool = True  # Tune can restore the run (else it starts afresh)
    torn_grid: bool = False  # the grid's generator and the snapshot disagree: not restored

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
        if self.set_aside:
            parts.append(f"{len(self.set_aside)} Tune state files cut short by the stop set aside")
        if self.dropped:
            parts.append(
                f"{len(self.dropped)} trials asked just before the stop that the journal never "
                "recorded: dropped, asked again"
            )
        if self.marked:
            parts.append(f"{len(self.marked)} end markers written from the other records")
        if self.released:
            parts.append(f"{len(self.released)} grid slots held by ended trials released")
        if self.orphans:
            parts.append(f"{len(self.orphans)} repeats whose original is not in the run train")
        if self.torn_grid:
            parts.append("Tune's grid generator and its snapshot disagree (set aside)")
        if not self.restorable:
            parts.append(
                "no usable Tune snapshot: the run is rebuilt from robprune's records "
                f"({len(self.continued)} unfinished trials continue from their checkpoints)"
            )
        return f"reconciled {self.run}: " + ("; ".join(parts) if parts else "nothing to fix")


def _values(spec: Spec, metrics: dict[str, Any]) -> list[float] | None:
    values = [metrics.get(o.metric) for o in spec.search.objectives]
    if any(not isinstance(v, int | float) or v != v for v in values):
        return None
    return [float(v) for v in values]


def _final_metrics(fs: pafs.FileSystem, trial_dir: str, record: TrialRecord) -> dict[str, Any]:
    """The metrics of the trial's last report, from the most durable source there is."""
    if record.final:
        text = storage.read_text_or_none(
            fs, f"{trial_dir}/{record.final}/{FINAL_DIR}/{RESULT_FILE}"
        )
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
        self.by_tune: dict[str, optuna.trial.FrozenTrial] = {}  # Tune trial id -> its trial
        self.run_trials: list[optuna.trial.FrozenTrial] = []
        if spec.search.mode == "grid" or not exp.journal_path.exists():
            return

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
        frozen = next(t for t in self.run_trials if t.number == number)
        internals.tell_trial(self.study, frozen, values, why)


def _classify(status: str, record: TrialRecord, ot_trial: Any) -> str | None:
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


def _unrecorded(trial: Any, record: TrialRecord, study: _Study) -> bool:
    """An unfinished Tune trial whose Optuna trial is not in the journal.

    On object storage Tune's snapshot can reach the storage before the journal's last ask
    does; a head lost in between leaves a Tune trial that Optuna never asked for. It is
    dropped from the snapshot (it has barely started) and the searcher asks again.
    """
    if study.study is None or trial.trial_id in study.by_tune:
        return False
    return _classify(trial.status, record, None) is None


def newest_snapshot(fs: pafs.FileSystem, run_path: str) -> tuple[str, dict[str, Any]] | None:
    """(path, contents) of the run's newest Tune experiment snapshot, None without one."""
    states = sorted(
        i.base_name for i in storage.listing(fs, run_path) if STATE_FILE.match(i.base_name)
    )
    if not states:
        return None
    path = f"{run_path}/{states[-1]}"
    return path, json.loads(storage.read_text_or_none(fs, path) or "{}")


def reconcile_run(spec: Spec, exp: Experiment, segment: Segment) -> Reconciled:
    """Fix the newest Tune snapshot of `segment` and the Optuna journal in place (see above)."""
    internals.check_tune_internals()
    out = Reconciled(run=segment.name)
    fs, run_path = _fs(exp, segment.name)
    out.restorable, out.set_aside = repair_run_state(fs, run_path)
    snapshot = newest_snapshot(fs, run_path) if out.restorable else None
    grid = spec.search.mode == "grid"
    if (
        snapshot
        and grid
        and grid_generator_disagrees(fs, run_path, len(snapshot[1].get("trial_data", [])))
    ):
        set_aside_snapshot(fs, run_path)  # reached storage apart: rebuilt from the records
        out.restorable, out.torn_grid, snapshot = False, True, None
    if out.restorable and not grid:
        reopen_search(fs, run_path)  # the journal, not a saved flag, ends the run
    study = _Study(spec, exp, segment.name)
    known: set[str] = set()  # without a complete snapshot the run starts afresh: none known
    if snapshot is not None:
        state_path, data = snapshot
        changed, kept, trials = False, [], []
        pairs = data.get("trial_data", [])
        listed = [internals.snapshot_trial(pair) for pair in pairs]
        dirs = [f"{run_path}/{t.storage.trial_dir_name}" for t in listed]
        settled = [t.status in ("TERMINATED", "ERROR") for t in listed]
        for pair, trial, record in zip(
            pairs, listed, read_records(fs, dirs, settled), strict=True
        ):
            if _unrecorded(trial, record, study):
                out.dropped.append(trial.trial_id)
                changed = True
                continue
            known.add(trial.trial_id)
            kept.append(pair)
            trials.append(trial)
            if _reconcile_trial(spec, fs, run_path, trial, record, study, out):
                pair[0], pair[1] = internals.snapshot_entry(trial)
                changed = True
        data["trial_data"] = kept
        unfinished = [t for t in trials if t.status not in ("TERMINATED", "ERROR")]
        out.orphans = orphan_repeats(fs, run_path, segment.name, unfinished, known)
        if changed:
            storage.write_text(fs, state_path, json.dumps(data))
        if grid:
            out.released = settle_grid_generator(fs, run_path, {t.trial_id for t in unfinished})
    if study.study is not None and out.restorable:
        for ot_trial in study.run_trials:
            tune_id = ot_trial.user_attrs.get(TUNE_TRIAL_ATTR)
            if ot_trial.state.name == "RUNNING" and tune_id not in known:
                settle_unknown(spec, fs, run_path, study, ot_trial, out)
    elif study.study is not None:
        _rebuild_from_records(spec, fs, run_path, study, out)
    return out


def _rebuild_from_records(
    spec: Spec, fs: pafs.FileSystem, run_path: str, study: _Study, out: Reconciled
) -> None:
    """No usable Tune snapshot: each unfinished Optuna trial is settled from its directory.

    Finished there (end marker, final checkpoint): told its result, its marker written. Else
    it stays RUNNING and the new Tune run continues it from its newest checkpoint
    (`search.run.continuation`)."""
    for ot_trial in study.run_trials:
        tune_id = ot_trial.user_attrs.get(TUNE_TRIAL_ATTR)
        if ot_trial.state.name != "RUNNING" or not tune_id:
            continue
        if not _settle_from_record(spec, fs, run_path, study, ot_trial, out):
            out.continued.append(tune_id)


def _settle_from_record(
    spec: Spec, fs: pafs.FileSystem, run_path: str, study: _Study, ot_trial: Any, out: Reconciled
) -> bool:
    """A RUNNING Optuna trial whose Tune trial's directory finishes it (end marker, `final/`
    checkpoint): told its result, its marker written if missing. Returns whether it was."""
    tune_id = ot_trial.user_attrs.get(TUNE_TRIAL_ATTR)
    if not tune_id:
        return False
    trial_dir = f"{run_path}/trial_{tune_id}"
    record = read_record(fs, trial_dir)
    terminal = _classify("", record, None)
    if terminal is None:
        return False
    metrics = _final_metrics(fs, trial_dir, record)
    if record.marker is None:
        keep = [o.metric for o in spec.search.objectives]
        text = marker_text(terminal, metrics, keep, why="written on resume from the record")
        storage.write_text(fs, f"{trial_dir}/{END_MARKER}", text)
        out.marked.append(tune_id)
    values = _values(spec, metrics) if terminal == "TERMINATED" else None
    study.tell(ot_trial.number, values, f"{terminal} in the trial's record, told on resume")
    out.told.append(ot_trial.number)
    return True


def settle_unknown(
    spec: Spec, fs: pafs.FileSystem, run_path: str, study: _Study, ot_trial: Any, out: Reconciled
) -> None:
    """A RUNNING Optuna trial whose Tune trial the restored snapshot does not know.

    The snapshot can be older than the trial: a trial that finished after the last snapshot,
    whose tell had not reached the stored journal when the driver died (on object storage the
    journal's upload precedes the end marker), is finished by its directory (its `final/`
    checkpoint) and told its result here; failing it as never started would make the searcher
    ask once more, one trial too many. Any other is failed as never started (`NEVER_STARTED`):
    the searcher asks for a new trial in its place."""
    if not _settle_from_record(spec, fs, run_path, study, ot_trial, out):
        study.tell(ot_trial.number, None, NEVER_STARTED)
        out.never_started.append(ot_trial.number)


def _reconcile_trial(
    spec: Spec,
    fs: pafs.FileSystem,
    run_path: str,
    trial: Any,
    record: TrialRecord,
    study: _Study,
    out: Reconciled,
) -> bool:
    """Decide one snapshot trial from its directory's `record`; returns whether its snapshot
    entry changed."""
    trial_dir = f"{run_path}/{trial.storage.trial_dir_name}"
    ot_trial = study.by_tune.get(trial.trial_id)
    terminal = _classify(trial.status, record, ot_trial)
    changed = False
    current = trial.checkpoint
    current_index = (
        checkpoint_index(current.path.rstrip("/").rsplit("/", 1)[-1]) if current else -1
    )
    newest = record.checkpoints[-1] if record.checkpoints else None
    if terminal and newest is not None and checkpoint_index(newest) > current_index:
        newest = record.final or newest  # a finished trial's newer one: its final, if any
    if newest is not None and checkpoint_index(newest) > current_index:
        internals.register_checkpoint(trial, newest, record.rows)
        if terminal is None:
            out.resumed[trial.trial_id] = newest
        changed = True
    if terminal is not None and trial.status != terminal:
        if terminal == "ERROR":  # Tune's own error files, where it wrote them before the stop
            names = {i.base_name for i in storage.listing(fs, trial_dir)}
            internals.record_error_files(trial, names)
        trial.set_status(terminal)
        out.finished.append(trial.trial_id)
        changed = True
    if terminal is not None and not record.has_marker:  # the records agree from now on
        metrics = _final_metrics(fs, trial_dir, record)
        keep = [o.metric for o in spec.search.objectives]
        text = marker_text(terminal, metrics, keep, why="written on resume from the record")
        storage.write_text(fs, f"{trial_dir}/{END_MARKER}", text)
        out.marked.append(trial.trial_id)
    if terminal is not None and ot_trial is not None and ot_trial.state.name == "RUNNING":
        values = None
        if terminal == "TERMINATED":
            values = _values(spec, _final_metrics(fs, trial_dir, record))
        why = f"{terminal} in Tune's record, told on resume"
        study.tell(ot_trial.number, values, why)
        out.told.append(ot_trial.number)
    return changed
