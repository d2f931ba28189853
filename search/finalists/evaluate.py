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
from search.finalists.store import is_current, read_result, write_result, write_selection
from search.results.export import collect_rows, export_experiment, tune_analysis
from search.run.tasks import failure_line, use_assigned_cpus
from search.state import storage
from search.state.experiment import Experiment

__all__ = ["after_search", "run_finalists", "trial_checkpoints"]


def trial_checkpoints(exp: Experiment) -> dict[str, Any]:
    """trial id -> its last Tune checkpoint (which holds final/model.pt), every run."""
    out: dict[str, Any] = {}
    for segment in exp.segments:
        analysis = tune_analysis(*storage.tune_storage(exp, segment.name))
        for trial in analysis.trials if analysis is not None else []:
            if trial.checkpoint is not None and trial.trial_id not in out:
                out[trial.trial_id] = (trial.checkpoint, trial.config.get("trial", {}))
    return out


def _finalist_task(config: dict[str, Any], checkpoint: Any, attacks: list[str] | None) -> dict:
    """One finalist in a Ray task: the checkpoint is fetched locally, then evaluated."""
    from robprune.evaluation.evaluate_finalists import evaluate_finalist

    use_assigned_cpus()
    with checkpoint.as_directory() as directory:
        return evaluate_finalist(config, directory, attacks=attacks, log=print)


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
) -> list[str]:
    """Select, evaluate what is not stored yet, store each result as it lands; returns ids.

    Needs a connected Ray. When `top` exceeds the completed trials: BadInput if `strict` (by
    hand), else every completed trial is a finalist (after a search where some failed).
    """
    stream = stream or sys.stdout
    selection = _select(exp, top, objectives, attacks, stream, strict=strict)
    chosen = selection["trial_ids"]
    pending = [t for t in chosen if not is_current(read_result(exp, t), selection)]
    if len(pending) < len(chosen):
        print(f"finalists: {len(chosen) - len(pending)} already evaluated", file=stream)
    _evaluate(exp, selection, pending, cpu=cpu, gpu=gpu, stream=stream)
    return chosen


def _select(
    exp: Experiment,
    top: int,
    objectives: list[tuple[str, str]],
    attacks: list[str] | None,
    stream: Any,
    *,
    strict: bool,
) -> dict[str, Any]:
    """Choose the finalists and store the selection (what was asked, and who was chosen)."""
    rows = collect_rows(exp).trials
    completed = [r for r in rows if r["status"] == "TERMINATED"]
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
    selection = {
        "top": top,
        "objectives": [f"{m}:{mode}" for m, mode in objectives],
        "trial_ids": chosen,
        "attacks": list(attacks) if attacks else None,
    }
    write_selection(exp, selection)
    note = " (the Pareto front)" if len(objectives) > 1 and len(chosen) < top else ""
    print(
        f"finalists: {len(chosen)} of {len(completed)} completed trials{note}, by validation "
        f"{', '.join(selection['objectives'])}: {', '.join(chosen)}",
        file=stream,
        flush=True,
    )
    return selection


def _evaluate(
    exp: Experiment,
    selection: dict[str, Any],
    pending: list[str],
    *,
    cpu: float,
    gpu: float,
    stream: Any,
) -> None:
    """One Ray task per pending finalist; each result is stored the moment it lands."""
    import ray

    checkpoints = trial_checkpoints(exp)
    task = ray.remote(_finalist_task).options(num_cpus=cpu, num_gpus=gpu, max_retries=0)
    refs: dict[Any, str] = {}
    for trial_id in pending:
        if trial_id not in checkpoints:
            print(f"finalists: {trial_id} has no checkpoint, skipped", file=stream, flush=True)
            continue
        checkpoint, config = checkpoints[trial_id]
        refs[task.remote(config, checkpoint, selection["attacks"])] = trial_id
    start = time.perf_counter()
    while refs:
        ready, _ = ray.wait(list(refs), num_returns=1)
        trial_id = refs.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except Exception as exc:  # noqa: BLE001 - reported; the other finalists go on
            print(f"finalists: {trial_id} failed: {failure_line(exc)}", file=stream, flush=True)
            continue
        result["request"] = {"attacks": selection["attacks"]}
        write_result(exp, trial_id, result)  # stored now: a killed driver keeps it
        m = result["metrics"]
        print(
            f"finalists: {trial_id} done after {time.perf_counter() - start:.0f} s: "
            f"{m.get('autoattack_label')} {fraction(m.get('autoattack_acc'))}"
            f"{images(m.get('autoattack_n'))}, "
            f"{len(m.get('masking_flags', []))} masking flag(s)",
            file=stream,
            flush=True,
        )


def after_search(spec: Any, exp: Experiment, stream: Any = None) -> None:
    """The finalists stage when the spec asks for it (`eval.autoattack: finalists`), then a
    fresh export so trials.parquet carries the finalists. Ray is connected."""
    mode, top = spec_finalists(spec)
    if mode != "finalists":
        return
    stream = stream or sys.stdout
    run_finalists(
        exp,
        top=top,
        objectives=spec_objectives(spec),
        cpu=spec.cpu,
        gpu=spec.gpu,
        stream=stream,
        strict=False,
    )
    export_experiment(exp)
    print(finalists_table(exp), file=stream, flush=True)
