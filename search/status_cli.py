"""`robprune status EXPERIMENT` and `robprune list [DIR]`: an experiment's state, readable
from another terminal while it runs, from a laptop when it lives on object storage.

The data is `search.run.overview`'s; this module formats it (`--json` prints it as it is).
`cluster.cli.status_main` prints an experiment, and a cluster job's experiment below the job's
state, with `format_overview`, so both say the same things the same way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from robprune.io.results_schema import format_states
from search.run.overview import list_experiments

__all__ = ["format_overview", "format_line", "list_main"]


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _best(best: dict[str, Any] | None) -> str:
    if not best:
        return "no trial has reported a validation value yet"
    attack = f" under {best['attack']}" if best.get("attack") else ""
    text = (
        f"trial {best['trial_id']}: {best['metric']} = {best['value']:.4f} "
        f"({best.get('split', 'validation')}{attack}, {best['mode']})"
    )
    test = {k: v for k, v in (best.get("test") or {}).items() if v is not None}
    if test:
        text += "; test " + ", ".join(f"{k} = {v:.4f}" for k, v in test.items())
    return text


def format_overview(view: dict[str, Any]) -> str:
    """The lines `robprune status EXPERIMENT` prints."""
    location = view["location"]
    detail = f" ({view['state_detail']})" if view.get("state_detail") else ""
    updated = ""
    if view.get("updated"):
        updated = f", updated {_age(max(0.0, time.time() - view['updated']))} ago"
    lines = [
        f"experiment: {view['name']} ({view['mode']}) at {location}",
        f"state:      {view['state']}{detail}{updated}",
        f"trials:     {format_states(view['trials'], view.get('planned'))} planned",
        f"best:       {_best(view.get('best'))}",
    ]
    error = view.get("last_error")
    if error:
        lines.append(f"last error: trial {error['trial_id']}: {error['error']}")
    if view["state"] in ("interrupted", "killed"):
        lines.append(f"continue:   robprune resume {location}")
    results = view.get("results")
    lines.append(
        f"results:    {results}/{{trials,epochs,layers}}.parquet"
        if results
        else "results:    none yet (written when a run ends; `robprune export` writes them now)"
    )
    report = view.get("report")
    lines.append(
        f"report:     {report}" if report else f"report:     none yet: robprune report {location}"
    )
    if view.get("optuna"):
        optuna = view["optuna"]
        lines.append(
            f"optuna:     optuna-dashboard {optuna['journal']}  (study {optuna['study']})"
        )
    return "\n".join(lines)


def format_line(view: dict[str, Any]) -> str:
    """One line of `robprune list`."""
    if view.get("state") == "unreadable":
        return f"{view['name']}  unreadable: {view.get('error', '')}"
    counts = format_states(view["trials"], view.get("planned"))
    best = view.get("best")
    shown = f"  best {best['metric']} {best['value']:.4f}" if best else ""
    return f"{view['name']}  {view['mode']}  {view['state']}  {counts}{shown}"


def list_main(args: argparse.Namespace) -> int:
    root = args.folder
    views = list_experiments(root)
    if getattr(args, "json", False):
        print(json.dumps(views, indent=1, default=str))
    elif not views:
        print(f"no experiments under {root}", file=sys.stderr)
    else:
        width = max(len(v["name"]) for v in views)
        for view in views:
            print(format_line({**view, "name": view["name"].ljust(width)}))
    return 0
