"""`make_plan`: a validated spec's trials, dense models, factor space and cost; as text or JSON.

Nothing here starts Ray or writes outside the calibration cache. With a cached calibration (or
`--epoch-seconds`) no torch is imported and the answer takes well under two seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robprune.config.cache_dir import default_cache_dir
from search.plan.calibrate import default_threads, measured_rates
from search.plan.count import Counts, count_spec, sample_configs
from search.plan.estimate import Cost, estimate_cost, hand_rates
from search.spec.model import Spec

__all__ = ["Plan", "make_plan", "plan_dict", "render_plan", "local_workers"]


@dataclass(frozen=True, kw_only=True)
class Plan:
    name: str
    counts: Counts
    trainings: int
    """Trials that train (repeats of a configuration are answered, not trained)."""
    dedupe: str
    workers: int
    workers_why: str
    cost: Cost | None
    cost_note: str


def local_workers(spec: Spec) -> tuple[int, str]:
    """Trials that run at once on this machine: its CPUs over `resources.cpu`, capped by
    `search.max_concurrent`."""
    cap = spec.search.max_concurrent
    if spec.gpu > 0:
        return (cap or 1), "search.max_concurrent (GPU trials; pass --workers N)"
    cpus = os.cpu_count() or 1
    slots = max(1, int(cpus // spec.cpu))
    why = f"{cpus} CPUs here / resources.cpu {spec.cpu:g}"
    if cap is not None and cap < slots:
        return cap, f"search.max_concurrent ({why} would allow {slots})"
    return slots, why


def _dedupe(spec: Spec, counts: Counts) -> tuple[int, str]:
    on = spec.search.dedupe
    if counts.mode == "grid":
        return counts.trials, spec.grid_repeats.describe(on)
    size = counts.space_size
    if size is not None and size < counts.trials:
        if not on:
            return counts.trials, (
                f"the space has {size} configurations, fewer than the {counts.trials} trials: "
                "repeats are trained again (search.dedupe: false)"
            )
        return size, (
            f"the space has {size} configurations, fewer than the {counts.trials} trials: at "
            "most that many train; the search stops once every one was tried (search.dedupe)"
        )
    if not on:
        return counts.trials, "repeated configurations are trained again (search.dedupe: false)"
    return counts.trials, (
        "a repeated configuration (seed included) is answered from the first, not trained "
        "(search.dedupe)"
    )


def make_plan(
    spec: Spec,
    *,
    workers: int | None = None,
    epoch_seconds: float | None = None,
    measure: bool = True,
    log: Callable[[str], None] | None = None,
) -> Plan:
    """The plan of a validated spec; calibrates what is not cached when `measure`."""
    counts = count_spec(spec)
    trainings, dedupe = _dedupe(spec, counts)
    n, why = local_workers(spec)
    if workers is not None and workers > n and spec.gpu == 0:
        why = f"--workers; here only {n} run at once, {why}: the wall time is for a cluster"
        n = workers
    elif workers is not None:
        n, why = workers, "--workers"
    configs = sample_configs(spec)
    if epoch_seconds is not None:
        rates = hand_rates(epoch_seconds, configs)
    else:
        cache = spec.fixed_value("cache_dir") or default_cache_dir()
        rates = measured_rates(cache, threads=default_threads(spec.cpu), measure=measure, log=log)
    try:
        cost = estimate_cost(
            spec, configs, counts.dense_configs, n_trials=trainings, workers=n, rates=rates
        )
        note = ""
    except LookupError as exc:
        cost, note = None, f"not calibrated on this machine ({exc}); run without --no-calibrate"
    if cost is not None and rates.devices:
        note = "calibrated here on " + ", ".join(sorted(map(_device_words, rates.devices)))
    elif cost is not None:
        note = rates.source
    return Plan(
        name=spec.name,
        counts=counts,
        trainings=trainings,
        dedupe=dedupe,
        workers=n,
        workers_why=why,
        cost=cost,
        cost_note=note,
    )


def _device_words(device: str) -> str:
    """`cpu (cpu)`, as calibrations cached before the CPU's model was recorded say: `cpu`."""
    kind, _, name = device.partition(" (")
    return kind if name.rstrip(")") == kind else device


def plan_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-able data (`robprune plan --json`)."""
    counts = plan.counts
    out: dict[str, Any] = {
        "name": plan.name,
        "mode": counts.mode,
        "trials": counts.trials,
        "trials_why": counts.trials_why,
        "trainings": plan.trainings,
        "space_size": counts.space_size,
        "dedupe": plan.dedupe,
        "dense_models": [d.to_json() for d in counts.dense],
        "factors": [f.to_json() for f in counts.factors],
        "workers": plan.workers,
        "workers_why": plan.workers_why,
        "cost_source": plan.cost_note,
        "cost": None,
    }
    cost = plan.cost
    if cost is not None:
        out["cost"] = {
            "trial_hours": cost.trial_hours,
            "dense_hours": sum(cost.dense_seconds) / 3600,
            "wall_hours": cost.wall_hours,
            "wall_seconds": cost.wall_seconds,
            "mean_trial_seconds": cost.mean_trial_seconds,
            "drivers": list(cost.drivers),
            "if_apgd_ce_breaks_every_image": None,
        }
        if cost.fewest is not None:
            out["cost"]["if_apgd_ce_breaks_every_image"] = {
                "wall_seconds": cost.fewest.wall_seconds,
                "mean_trial_seconds": cost.fewest.trial_seconds / max(1, cost.trials),
            }
    return out


def _hours(hours: float) -> str:
    seconds = hours * 3600
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{hours:.1f} h"


def _values(row: dict[str, Any]) -> str:
    if row["kind"] == "choice":
        return "{" + ", ".join(map(str, row["values"])) + "}"
    lo, hi = row["values"]
    return f"{row['kind']} [{lo}, {hi}]"


def render_plan(plan: Plan) -> str:
    """What `robprune plan` prints."""
    data = plan_dict(plan)
    lines = [
        f"plan: {plan.name} ({data['mode']})",
        f"trials: {data['trials']} ({data['trials_why']})",
        f"repeats: {plan.dedupe}",
        f"dense models: {len(data['dense_models'])}",
    ]
    for row in data["dense_models"]:
        lines.append("  " + ", ".join(f"{k} {v}" for k, v in row.items()))
    lines.append(f"factors: {len(data['factors'])} varied" + (":" if data["factors"] else ""))
    for row in data["factors"]:
        when = f"  (only when {row['only_when']})" if "only_when" in row else ""
        lines.append(f"  {row['path']}: {_values(row)}{when}")
    if data["space_size"] is not None:
        lines.append(f"space: {data['space_size']} distinct configurations")
    cost = data["cost"]
    if cost is None:
        lines.append(f"cost: {plan.cost_note}")
        return "\n".join(lines)
    lines += [
        f"cost ({plan.cost_note}):",
        f"  trial-hours: {cost['trial_hours']:.3g} (dense models {cost['dense_hours']:.3g}); "
        f"mean trial {_hours(cost['mean_trial_seconds'] / 3600)}",
        f"  wall: {_hours(cost['wall_hours'])} on {plan.workers} worker(s) ({plan.workers_why})",
    ]
    fewest = cost["if_apgd_ce_breaks_every_image"]
    if fewest is not None:
        lines.append(
            "  the strong response is counted at its upper bound (APGD-T on every test image);"
            f" if APGD-CE breaks every image: wall {_hours(fewest['wall_seconds'] / 3600)}, "
            f"mean trial {_hours(fewest['mean_trial_seconds'] / 3600)}"
        )
    lines.append("  what drives it (image-passes = attack steps x epochs x images):")
    for row in sorted(cost["drivers"], key=lambda r: -r["seconds"]):
        share = row["share_of_trials"]
        where = f"{share:.0%} of trial time" if share is not None else "before the trials"
        passes = f"{row['image_passes']:.3g} image-passes, " if row["image_passes"] else ""
        lines.append(f"    {row['stage']}: {passes}{where} (e.g. {row['example']})")
    return "\n".join(lines)
