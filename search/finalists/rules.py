"""The spec's finalist settings (`eval.autoattack`, `eval.finalists`): rules checked at parse.

They must be fixed values, and K must fit the trials the search plans to run; both are found
before Ray starts or a directory is created.
"""

from __future__ import annotations

from typing import Any

from robprune.errors import BadInput

__all__ = ["spec_finalists", "planned_trials", "check_spec", "spec_objectives"]


def spec_finalists(spec: Any) -> tuple[str, int]:
    """(eval.autoattack, eval.finalists) of a search spec: fixed values, never searched."""
    for path in ("eval.autoattack", "eval.finalists", "eval.autoattack_n"):
        if spec.dist(path) is not None:
            raise BadInput(f"{path}: must be a fixed value, not a distribution")
    return str(spec.fixed_value("eval.autoattack")), int(spec.fixed_value("eval.finalists"))


def planned_trials(spec: Any) -> int:
    """How many trials the search will run: the grid's cells x seeds, or num_samples."""
    if spec.search.mode == "grid":
        return len(spec.grid)
    return int(spec.search.num_samples)


def check_spec(spec: Any) -> None:
    """Before Ray starts: the finalists settings are fixed and K fits the planned trials."""
    mode, top = spec_finalists(spec)
    if mode == "finalists" and top > planned_trials(spec):
        raise BadInput(
            f"eval.finalists: {top} is more than the {planned_trials(spec)} trials this "
            "search runs; lower it or run more trials"
        )


def spec_objectives(spec: Any) -> list[tuple[str, str]]:
    return [(o.metric, o.mode) for o in spec.search.objectives]
