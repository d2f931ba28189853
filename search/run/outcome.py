"""How a run ends: the export, closing the Optuna study, the summary and the exit code."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from search.finalists.evaluate import after_search
from search.finalists.rules import planned_trials
from search.results.export import TERMINAL, export_experiment
from search.results.rows import TrialRow
from search.results.tensorboard import HPARAM_COLUMNS
from search.run.storage_fault import EXIT_STORAGE, StorageFault
from search.spec.grid import space_size
from search.spec.model import Spec
from search.state import storage
from search.state.experiment import Experiment, Segment

__all__ = ["RunOutcome", "finish_run", "stopped_by_storage"]


@dataclass(kw_only=True)
class RunOutcome:
    """How a search ended: for the exit code and the summary."""

    experiment: Experiment
    completed: int
    failed: int
    unfinished: int
    interrupted: bool  # by Ctrl-C only: a run short of its plan is `unfinished`, not this
    results_dir: str
    storage_fault: str | None = None  # the line saying what failed and how to continue

    @property
    def exit_code(self) -> int:
        if self.storage_fault:
            return EXIT_STORAGE
        if self.interrupted:
            return 130
        return 1 if self.failed or self.unfinished else 0


def stopped_by_storage(exp: Experiment, fault: StorageFault, stream: Any) -> RunOutcome:
    """The search stopped on a storage fault: one line on stderr; nothing exported (the
    storage is what failed), the run stays unfinished and `robprune resume` continues it."""
    line = fault.line(exp.location)
    print(f"robprune: error: {line}", file=sys.stderr, flush=True)
    print(f"stopped: {line}", file=stream, flush=True)
    results = storage.join(exp.location, "results")
    return RunOutcome(
        experiment=exp,
        completed=0,
        failed=0,
        unfinished=0,
        interrupted=False,
        results_dir=results,
        storage_fault=line,
    )


def _varying_columns(rows: list[TrialRow]) -> list[str]:
    return [c for c in HPARAM_COLUMNS if len({r.get(c) for r in rows}) > 1]


def finish_run(
    spec: Spec, exp: Experiment, segment: Segment, stream: Any, *, interrupted: bool = False
) -> RunOutcome:
    """Export, close stale Optuna trials when all is done, print the summary.

    `interrupted` (Ctrl-C) makes the run end as interrupted even if every trial finished.
    """
    from search.run import progress, tune_internals  # Tune's callbacks, Ray: only at the end

    result = export_experiment(exp)
    unfinished = sum(1 for r in result.trials if r.status not in TERMINAL)
    missing = _missing(spec, exp, segment, result.ended.get(segment.name, 0), stream)
    short = interrupted or unfinished > 0 or missing > 0  # exit 130 is for Ctrl-C alone
    exp.set_segment_status(segment.name, "interrupted" if short else "finished")
    if not short and spec.search.mode != "grid" and exp.journal_path.exists():
        tune_internals.finalize_study(exp.journal_path, exp.study_name)
        storage.push(exp, "optuna")
    completed, failed = result.count("TERMINATED"), result.count("ERROR")
    varying = _varying_columns(result.trials)
    objectives = [
        (o.metric, o.mode) for o in spec.search.objectives if o.metric not in ("train_loss",)
    ] or [("robust_acc", "max")]
    print("", file=stream)
    print(
        f"{exp.name}: {completed} TERMINATED, {failed} ERROR, {unfinished} unfinished "
        f"(of {len(result.trials)})",
        file=stream,
    )
    print("best trials (ranked on validation, test-split accuracies shown):", file=stream)
    print(progress.summary_table(result.trials, objectives, varying), file=stream)
    for row in result.trials:
        if row.status == "ERROR":
            print(f"failed {row.trial_id}: {row.error}", file=stream)
    print(f"results: {result.results_dir}/{{trials,epochs,layers}}.parquet", file=stream)
    print(f"tensorboard: tensorboard --logdir {result.results_dir}/tensorboard", file=stream)
    if exp.journal_path.exists():  # every mode writes its study (a grid records its trials)
        print(f"optuna: optuna-dashboard {exp.journal_path}", file=stream)
    if short:
        said = "interrupted" if interrupted else "not finished"
        print(f"{said}: continue with `robprune resume {exp.location}`", file=stream)
    stream.flush()
    if not short:  # eval.autoattack: finalists -> the best trials get AutoAttack now
        after_search(spec, exp, result, stream)  # on these rows: Tune is not read again
    return RunOutcome(
        experiment=exp,
        completed=completed,
        failed=failed,
        unfinished=unfinished + missing,
        interrupted=interrupted,
        results_dir=result.results_dir,
    )


def _missing(spec: Spec, exp: Experiment, segment: Segment, ended: int, stream: Any) -> int:
    """Planned trials of the run that Tune never ended (said, so that no loss is silent).

    A run is `finished` only when every planned trial is accounted for, or when the searcher
    stopped early because every configuration of an all-choice space was tried
    (`search.dedupe`); a run short of its plan stays unfinished and `robprune resume` hands
    out the rest.
    """
    planned = planned_trials(spec)
    if spec.search.mode != "grid" and segment.num_samples:
        planned = int(segment.num_samples)
    if ended >= planned or _space_exhausted(spec, exp):
        return 0
    print(
        f"{segment.name}: {ended} of its {planned} planned trials ended: not finished",
        file=stream,
    )
    return planned - ended


def _space_exhausted(spec: Spec, exp: Experiment) -> bool:
    """The study tried every configuration of its all-choice space (dedupe stops there)."""
    if spec.search.mode == "grid" or not spec.search.dedupe or not exp.journal_path.exists():
        return False
    size = space_size(spec)
    if size is None:
        return False
    import optuna

    from search.run.study import configurations_tried, open_storage

    study = optuna.load_study(study_name=exp.study_name, storage=open_storage(exp.journal_path))
    return configurations_tried(study.get_trials(deepcopy=False)) >= size
