"""The finalists stage: the best trials re-evaluated with the official AutoAttack.

After a search (`eval.autoattack: finalists`), or by hand (`robprune finalize EXPERIMENT`), the
K best completed trials by the *validation* objective (for several objectives: the Pareto front,
capped at K) are re-evaluated from their saved pruned models on the full test split with the
full attack suite, AutoAttack and the deep masking checks, as Ray tasks with the trials'
resources. Each result is stored as soon as it arrives (search/finalists/store.py), so a
killed driver does not redo finished finalists; the Parquet export then carries them.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from robprune.errors import BadInput
from robprune.formatting import fraction
from search.finalists.choose import select_finalists
from search.finalists.present import finalists_table, images
from search.finalists.rules import spec_finalists, spec_objectives
from search.finalists.selection import FinalistResult, FinalistSelection
from search.finalists.store import is_current, read_result, write_result, write_selection
from search.results.export import ExportResult, collect_rows, write_results
from search.run.tasks import failure_line, use_assigned_cpus
from search.state.experiment import Experiment

__all__ = ["after_search", "run_finalists"]


def _finalist_task(
    config: dict[str, Any], checkpoint: Any, request: dict[str, Any]
) -> FinalistResult:
    """One finalist in a Ray task: the checkpoint is fetched locally, then evaluated."""
    from robprune.evaluation.evaluate_finalists import evaluate_finalist

    use_assigned_cpus()
    with checkpoint.as_directory() as directory:
        record = evaluate_finalist(config, directory, attacks=request["attacks"], log=print)
    return FinalistResult.answering(record, request)


def run_finalists(
    exp: Experiment,
    *,
    top: int,
    objectives: list[tuple[str, str]],
    cpu: float,
    gpu: float,
    attacks: list[str] | None = None,
    stream: Any = None,
    strict: bool = True,
    collected: ExportResult | None = None,
) -> list[str]:
    """Select, evaluate what is not stored yet, store each result as it lands; returns ids.

    Chooses from `collected` (the rows of the export that precedes the stage) or, without
    them, from a fresh read of Tune's state. Needs a connected Ray. When `top` exceeds the
    completed trials: BadInput if `strict` (by hand), else every completed trial is a
    finalist (after a search where some failed).
    """
    stream = stream or sys.stdout
    collected = collected if collected is not None else collect_rows(exp)
    selection = _select(exp, collected, top, objectives, attacks, stream, strict=strict)
    chosen = selection.trial_ids
    pending = [t for t in chosen if not is_current(read_result(exp, t), selection)]
    if len(pending) < len(chosen):
        print(f"finalists: {len(chosen) - len(pending)} already evaluated", file=stream)
    _evaluate(exp, selection, pending, cpu=cpu, gpu=gpu, stream=stream)
    return list(chosen)


def _select(
    exp: Experiment,
    collected: ExportResult,
    top: int,
    objectives: list[tuple[str, str]],
    attacks: list[str] | None,
    stream: Any,
    *,
    strict: bool,
) -> FinalistSelection:
    """Choose the finalists and store the selection (what was asked, and who was chosen)."""
    # the trials' own numbers: a finalist column of an earlier selection never chooses
    rows = [row.with_finalist({}) for row in collected.trials]
    completed = [r for r in rows if r.status == "TERMINATED"]
    if top > len(completed) and strict:
        raise BadInput(
            f"eval.finalists: {top} finalists asked, but the experiment has only "
            f"{len(completed)} completed trials"
        )
    if top > len(completed):
        print(
            f"finalists: only {len(completed)} trials completed; all of them are finalists",
            file=stream,
        )
        top = len(completed)
    chosen = select_finalists(rows, objectives, top)
    by_id = {r.trial_id: r.source for r in rows}
    selection = FinalistSelection(
        top=top,
        objectives=tuple(f"{m}:{mode}" for m, mode in objectives),
        trial_ids=tuple(chosen),
        attacks=tuple(attacks) if attacks else None,
        sources={t: source for t in chosen if (source := by_id.get(t)) is not None},
    )
    write_selection(exp, selection)
    note = " (the Pareto front)" if len(objectives) > 1 and len(chosen) < top else ""
    print(
        f"finalists: {len(chosen)} of {len(completed)} completed trials{note}, by validation "
        f"{', '.join(selection.objectives)}: {', '.join(chosen)}",
        file=stream,
        flush=True,
    )
    return selection


def _evaluate(
    exp: Experiment,
    selection: FinalistSelection,
    pending: list[str],
    *,
    cpu: float,
    gpu: float,
    stream: Any,
) -> None:
    """One Ray task per pending finalist; each result is stored the moment it lands."""
    import ray

    task = ray.remote(_finalist_task).options(num_cpus=cpu, num_gpus=gpu, max_retries=0)
    refs: dict[Any, str] = {}
    for trial_id in pending:
        source = selection.sources.get(trial_id)
        if source is None:
            print(f"finalists: {trial_id} has no checkpoint, skipped", file=stream, flush=True)
            continue
        refs[task.remote(source.config, source.checkpoint, selection.request)] = trial_id
    start = time.perf_counter()
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        trial_id = refs.pop(ready[0])
        try:
            result: FinalistResult = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - reported; the other finalists go on
            print(f"finalists: {trial_id} failed: {failure_line(exc)}", file=stream, flush=True)
            continue
        write_result(exp, trial_id, result)  # stored now: a killed driver keeps it
        m = result.metrics
        print(
            f"finalists: {trial_id} done after {time.perf_counter() - start:.0f} s: "
            f"{m.get('autoattack_label')} {fraction(m.get('autoattack_acc'))}"
            f"{images(m.get('autoattack_n'))}, "
            f"{len(m.get('masking_flags', []))} masking flag(s)",
            file=stream,
            flush=True,
        )


def after_search(
    spec: Any, exp: Experiment, collected: ExportResult, stream: Any = None
) -> ExportResult | None:
    """The finalists stage when the spec asks for it (`eval.autoattack: finalists`), on the
    rows the search's export collected, then those rows written again with the finalists
    merged (Tune's state is not read again). Ray is connected."""
    mode, top = spec_finalists(spec)
    if mode != "finalists":
        return None
    stream = stream or sys.stdout
    run_finalists(
        exp,
        top=top,
        objectives=spec_objectives(spec),
        cpu=spec.cpu,
        gpu=spec.gpu,
        stream=stream,
        strict=False,
        collected=collected,
    )
    result = write_results(exp, collected)
    print(finalists_table(exp), file=stream, flush=True)
    return result
