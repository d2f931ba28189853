"""`robprune finalize EXPERIMENT`: the finalists stage by hand, on a finished experiment."""

from __future__ import annotations

from typing import Any

from robprune.config.names import ATTACKS, parse_attack_name
from robprune.errors import BadInput
from search.finalists.evaluate import run_finalists
from search.finalists.present import finalists_table
from search.finalists.rules import spec_finalists, spec_objectives
from search.results.export import collect_rows, write_results
from search.run.ownership import owner_mark, ray_temp_dir, reap_dead_driver, record_driver
from search.run.runner import load_experiment_spec, owns_local_ray
from search.run.session import is_local, prepare_environment, ray_session
from search.state.experiment import Experiment

__all__ = ["finalize_main", "check_attack_list"]


def check_attack_list(attacks: list[str] | None) -> list[str] | None:
    """`--attacks` names, checked with the registry's grammar (BadInput names the bad one)."""
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
    exp = Experiment.open(args.experiment)
    spec = load_experiment_spec(exp)
    _, default_top = spec_finalists(spec)
    top = default_top if args.top is None else int(args.top)
    if top < 1:
        raise BadInput(f"--top: must be >= 1, got {top}")
    attacks = check_attack_list(getattr(args, "attacks", None))
    address = getattr(args, "address", None)
    prepare_environment(local=is_local(address))
    objectives, resources = spec_objectives(spec), {"cpu": spec.cpu, "gpu": spec.gpu}
    # like search and resume: beside a live driver, refuse; a dead one's Ray is ended; this
    # driver is recorded before its own Ray starts, so the next command can end what it left
    reap_dead_driver(exp)
    ray_dir = ray_temp_dir() if owns_local_ray(address) else None
    record_driver(exp, ray_dir=ray_dir)
    with owner_mark(ray_dir), ray_session(address, temp_dir=ray_dir):
        collected = collect_rows(exp)  # Tune's state, read once: to choose, then to export
        run_finalists(
            exp, top=top, objectives=objectives, attacks=attacks, collected=collected, **resources
        )
        result = write_results(exp, collected)
    print(finalists_table(exp))
    print(f"results: {result.results_dir}/trials.parquet")
    return 0
