"""`robprune search | resume | export | demo`: argument handling around `search.run.runner`.

Bad input (a wrong spec, a missing experiment) raises `BadInput` before Ray starts or any
directory is made; `robprune.cli.dispatch` prints it as one line and exits 2. Otherwise the
exit code is 0 when every trial completed, 1 when any failed, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from robprune.errors import BadInput
from search.demo import run_demo
from search.plan.cli import print_plan
from search.results.export import export_experiment
from search.run.runner import resume_experiment, run_search
from search.spec.parse import load_spec
from search.state.experiment import Experiment
from search.state.storage import join
from search.state.storage_check import check_exportable

__all__ = ["search_main", "resume_main", "export_main", "demo_main"]


def search_main(args: argparse.Namespace) -> int:
    """A new search; with --resume, the same command continues the experiment it names."""
    resume = bool(getattr(args, "resume", False))
    spec = load_spec(
        args.spec,
        getattr(args, "overrides", []) or [],
        name=args.name,
        storage=args.storage,
        timestamp=not resume,  # --resume names the experiment after the spec, not the time
    )  # everything is checked here, before Ray
    if getattr(args, "plan", False):
        print_plan(spec, args)
        return 0

    if resume:
        location = existing_experiment(spec)
        if location is not None:
            return resume_experiment(location, address=args.address).exit_code
    return run_search(spec, address=args.address).exit_code


#: `resume` options that only a submitted job uses (robprune.cli's job arguments)
_JOB_ONLY = ("installed", "pip", "env", "shared_paths")


def existing_experiment(spec: Any) -> str | None:
    """The location of the spec's experiment if it exists (with this very spec), else None."""
    exp = Experiment(join(spec.storage, spec.name))
    if not exp.exists():
        return None
    stored = yaml.safe_load(Experiment.open(exp.location).read_spec_yaml())
    where = first_difference(stored, yaml.safe_load(spec.to_yaml()))
    if where is not None:
        raise BadInput(
            f"--resume: {where or 'the spec'} differs from {exp.path('spec.yaml')}, the spec "
            f"the experiment runs; continue it with `robprune resume {exp.location}`, or "
            "choose another --name"
        )
    return exp.location


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first key path where two parsed YAML documents differ (None when equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    return None if a == b else path


def resume_main(args: argparse.Namespace) -> int:
    """Plain `resume`: here, on this machine's Ray or --address (`--submit` is cluster.cli's)."""
    given = [f"--{k.replace('_', '-')}" for k in _JOB_ONLY if getattr(args, k, None)]
    if getattr(args, "working_dir", ".") != ".":
        given.append("--working-dir")
    if getattr(args, "python", "python") != "python":
        given.append("--python")
    if given:
        raise BadInput(f"{', '.join(given)}: only with --submit")

    return resume_experiment(
        args.experiment, extend=int(args.extend or 0), address=getattr(args, "address", None)
    ).exit_code


def export_main(args: argparse.Namespace) -> int:
    exp = Experiment.open(args.experiment)
    check_exportable(exp)  # writable, with room: one line and exit 2 before anything is written
    result = export_experiment(exp)
    print(
        f"{len(result.trials)} trials ({result.count('TERMINATED')} TERMINATED, "
        f"{result.count('ERROR')} ERROR), {len(result.epochs)} epoch rows, "
        f"{len(result.layers)} layer rows"
    )
    print(f"results: {result.results_dir}/{{trials,epochs,layers}}.parquet")
    return 0


def demo_main(args: argparse.Namespace) -> int:
    return run_demo(
        storage=getattr(args, "storage", "./experiments") or "./experiments", stream=sys.stdout
    )
