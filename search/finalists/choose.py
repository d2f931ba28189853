"""Choosing finalists: the best completed trials by the validation objective(s).

One objective: the top K. Several: the Pareto front, capped at K.
"""

from __future__ import annotations

from collections.abc import Sequence

from search.results.rows import Columns

__all__ = ["objective_column", "select_finalists"]

#: the searched metrics are validation numbers; their columns in trials.parquet
_VALIDATION = {"robust_acc": "val_robust_acc", "clean_acc": "val_clean_acc"}


def objective_column(metric: str) -> str:
    return _VALIDATION.get(metric, metric)


def _oriented(row: Columns, objectives: list[tuple[str, str]]) -> tuple[float, ...]:
    """Objective values of `row`, each turned so that larger is better."""
    signs = [(objective_column(m), 1 if mode == "max" else -1) for m, mode in objectives]
    return tuple(float(row.get(column)) * sign for column, sign in signs)


def select_finalists(
    rows: Sequence[Columns], objectives: list[tuple[str, str]], k: int
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
    scored = [(_oriented(r, objectives), r.get("trial_id")) for r in done]
    if len(objectives) > 1:

        def dominated(a: tuple[float, ...]) -> bool:
            return any(
                all(x >= y for x, y in zip(b, a, strict=True)) and b != a for b, _ in scored
            )

        scored = [s for s in scored if not dominated(s[0])]
    scored.sort(key=lambda s: (tuple(-v for v in s[0]), s[1]))
    return [tid for _, tid in scored[:k]]
