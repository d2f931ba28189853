"""The finalists stage: the best trials re-evaluated with the official AutoAttack.

After a search (`eval.autoattack: finalists`), or by hand (`robprune finalize EXPERIMENT`), the
K best completed trials by the *validation* objective (for several objectives: the Pareto front,
capped at K) are re-evaluated from their saved pruned models on the full test split with the
full attack suite, AutoAttack and the deep masking checks, as Ray tasks with the trials'
resources. Each result is stored as soon as it arrives (search/finalist_store.py), so a killed
driver does not redo finished finalists; the Parquet export then carries them.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from robprune.errors import BadInput
from search.experiment import Experiment
from search.finalist_store import (
    is_current,
    read_result,
    read_selection,
    write_result,
    write_selection,
)

__all__ = [
    "after_search",
    "finalize_main",
    "spec_finalists",
    "check_spec",
    "objective_column",
    "select_finalists",
    "run_finalists",
    "finalists_table",
    "trial_checkpoints",
]

#: the searched metrics are validation numbers; their columns in trials.parquet
_VALIDATION = {"robust_acc": "val_robust_acc", "clean_acc": "val_clean_acc"}


def objective_column(metric: str) -> str:
    return _VALIDATION.get(metric, metric)


def _oriented(row: dict[str, Any], objectives: list[tuple[str, str]]) -> tuple[float, ...]:
    """Objective values of `row`, each turned so that larger is better."""
    return tuple(
        float(row[objective_column(m)]) * (1 if mode == "max" else -1) for m, mode in objectives
    )


def select_finalists(
    rows: list[dict[str, Any]], objectives: list[tuple[str, str]], k: int
) -> list[str]:
    """Trial ids of the finalists, best first (ties: trial id).

    One objective: the top `k`. Several: the non-dominated trials (Pareto front), ordered by
    the objectives in turn, capped at `k` (a front smaller than `k` gives fewer finalists).
    """
    done = [
        r
        for r in rows
        if r.get("status") == "TERMINATED"
        and all(r.get(objective_column(m)) is not None for m, _ in objectives)
    ]
    scored = [(_oriented(r, objectives), r["trial_id"]) for r in done]
    if len(objectives) > 1:

        def dominated(a: tuple[float, ...]) -> bool:
            return any(
                all(x >= y for x, y in zip(b, a, strict=True)) and b != a for b, _ in scored
            )

        scored = [s for s in scored if not dominated(s[0])]
    scored.sort(key=lambda s: (tuple(-v for v in s[0]), s[1]))
    return [tid for _, tid in scored[:k]]


def trial_checkpoints(exp: Experiment) -> dict[str, Any]:
    """trial id -> its last Tune checkpoint (which holds final/model.pt), every run."""
    from search.export import _analysis

    out: dict[str, Any] = {}
    for segment in exp.segments:
        analysis = _analysis(*exp.tune_storage(segment.name))
        for trial in analysis.trials if analysis is not None else []:
            if trial.checkpoint is not None and trial.trial_id not in out:
                out[trial.trial_id] = (trial.checkpoint, trial.config.get("trial", {}))
    return out


def _finalist_task(config: dict[str, Any], checkpoint: Any, attacks: list[str] | None) -> dict:
    """One finalist in a Ray task: the checkpoint is fetched locally, then evaluated."""
    import ray
    import torch

    from robprune.evaluation.evaluate_finalists import evaluate_finalist

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
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
    import ray

    from search.export import collect_rows

    stream = stream or sys.stdout
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
    pending = [t for t in chosen if not is_current(read_result(exp, t), selection)]
    if len(pending) < len(chosen):
        print(f"finalists: {len(chosen) - len(pending)} already evaluated", file=stream)
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
            cause = getattr(exc, "cause", None) or exc
            text = str(cause).strip().splitlines()
            print(
                f"finalists: {trial_id} failed: {type(cause).__name__}: {text[0] if text else ''}",
                file=stream,
                flush=True,
            )
            continue
        result["request"] = {"attacks": selection["attacks"]}
        write_result(exp, trial_id, result)  # stored now: a killed driver keeps it
        m = result["metrics"]
        print(
            f"finalists: {trial_id} done after {time.perf_counter() - start:.0f} s: "
            f"{m.get('autoattack_label')} {_fmt(m.get('autoattack_acc'))}, "
            f"{len(m.get('masking_flags', []))} masking flag(s)",
            file=stream,
            flush=True,
        )
    return chosen


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def finalists_table(exp: Experiment) -> str:
    """A plain-text table of the stored finalists (for the terminal)."""
    selection = read_selection(exp) or {}
    lines = []
    for rank, trial_id in enumerate(selection.get("trial_ids", []), start=1):
        result = read_result(exp, trial_id)
        if not is_current(result, selection):
            lines.append(f"{rank:>2}  {trial_id:<12}  (not evaluated)")
            continue
        m = result["metrics"]
        flags = ", ".join(f["code"] for f in m.get("masking_flags", [])) or "none"
        lines.append(
            f"{rank:>2}  {trial_id:<12}  clean {_fmt(m.get('clean_acc'))}  "
            f"{m['robust_attack']} {_fmt(m.get('robust_acc'))}  APGD (ours) "
            f"{_fmt(m.get('apgd_acc'))}  {m.get('autoattack_label')} "
            f"{_fmt(m.get('autoattack_acc'))}  flags: {flags}"
        )
    header = "finalists (full test split):"
    return "\n".join([header, *lines]) if lines else "finalists: none"


# ------------------------------------------------------------------------------ entry points


def spec_finalists(spec: Any) -> tuple[str, int]:
    """(eval.autoattack, eval.finalists) of a search spec: fixed values, never searched."""
    for path in ("eval.autoattack", "eval.finalists", "eval.autoattack_n"):
        if spec.dist(path) is not None:
            raise BadInput(f"{path}: must be a fixed value, not a distribution")
    return str(spec.fixed_value("eval.autoattack")), int(spec.fixed_value("eval.finalists"))


def planned_trials(spec: Any) -> int:
    """How many trials the search will run: the grid's cells x seeds, or num_samples."""
    if spec.search.mode == "grid":
        from search.space import grid_configs

        return len(grid_configs(spec, "."))
    return int(spec.search.num_samples)


def check_spec(spec: Any) -> None:
    """Before Ray starts: the finalists settings are fixed and K fits the planned trials."""
    mode, top = spec_finalists(spec)
    if mode == "finalists" and top > planned_trials(spec):
        raise BadInput(
            f"eval.finalists: {top} is more than the {planned_trials(spec)} trials this "
            "search runs; lower it or run more trials"
        )


def _objectives(spec: Any) -> list[tuple[str, str]]:
    return [(o.metric, o.mode) for o in spec.search.objectives]


def after_search(spec: Any, exp: Experiment, stream: Any = None) -> None:
    """The finalists stage when the spec asks for it (`eval.autoattack: finalists`), then a
    fresh export so trials.parquet carries the finalists. Ray is connected."""
    from search.export import export_experiment

    mode, top = spec_finalists(spec)
    if mode != "finalists":
        return
    stream = stream or sys.stdout
    run_finalists(
        exp,
        top=top,
        objectives=_objectives(spec),
        cpu=spec.cpu,
        gpu=spec.gpu,
        stream=stream,
        strict=False,
    )
    export_experiment(exp)
    print(finalists_table(exp), file=stream, flush=True)


def check_attack_list(attacks: list[str] | None) -> list[str] | None:
    """`--attacks` names, checked with the registry's grammar (BadInput names the bad one)."""
    from robprune.config.names import ATTACKS, parse_attack_name

    for name in attacks or []:
        try:
            parse_attack_name(name)
        except ValueError:
            raise BadInput(
                f"--attacks: unknown attack {name!r}; allowed: {', '.join(ATTACKS)}"
            ) from None
    return list(attacks) if attacks else None


def finalize_main(args: Any) -> int:
    """`robprune finalize EXPERIMENT [--top K] [--attacks ...]`: the stage by hand."""
    from search.export import export_experiment
    from search.runner import load_experiment_spec
    from search.session import is_local, prepare_environment, ray_session

    exp = Experiment.open(args.experiment)
    spec = load_experiment_spec(exp)
    _, default_top = spec_finalists(spec)
    top = default_top if args.top is None else int(args.top)
    if top < 1:
        raise BadInput(f"--top: must be >= 1, got {top}")
    attacks = check_attack_list(getattr(args, "attacks", None))
    address = getattr(args, "address", None)
    prepare_environment(local=is_local(address))
    with ray_session(address):
        run_finalists(
            exp, top=top, objectives=_objectives(spec), cpu=spec.cpu, gpu=spec.gpu, attacks=attacks
        )
        result = export_experiment(exp)
    print(finalists_table(exp))
    print(f"results: {result.results_dir}/trials.parquet")
    return 0
