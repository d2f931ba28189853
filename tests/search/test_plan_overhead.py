"""The search machinery's overhead in `robprune plan`: fitted to the recorded bench_scale runs,
linear in trials, smaller per trial with more at once, and part of the plan's wall time."""

from __future__ import annotations

import json

import pytest

from search.plan.count import sample_configs
from search.plan.estimate import OVERHEAD, estimate_cost, hand_rates
from search.plan.overhead import FITTED, Overhead, fit
from search.spec.parse import parse_spec
from tests.support.paths import ROOT

RECORDED = ROOT / "benchmarks" / "results" / "bench_scale.jsonl"


def _recorded_runs() -> list[dict]:
    lines = RECORDED.read_text().splitlines()
    return [run for line in lines if line.strip() for run in json.loads(line)["runs"]]


def test_the_fitted_figures_are_those_of_the_recorded_runs():
    assert fit(_recorded_runs()) == FITTED
    assert FITTED.driver_s > 0 and FITTED.search_s > 0


def test_a_fit_recovers_a_known_model_and_needs_three_runs():
    truth = Overhead(search_s=30.0, driver_s=0.05, worker_s=2.0)
    runs = [
        {"storage": "local", "size": n, "concurrency": c, "ideal_s": 1.0}
        | {"wall_s": 1.0 + truth.wall_s(n, c)}
        for n in (20, 200, 2000)
        for c in (4, 16)
    ]
    assert fit(runs) == truth
    with pytest.raises(ValueError, match="at least 3"):
        fit(runs[:2])
    assert truth.wall_s(2000, 16) - truth.search_s == pytest.approx(
        10 * (truth.wall_s(200, 16) - 30)
    )
    assert truth.wall_s(200, 16) < truth.wall_s(200, 4)


def test_the_plan_wall_time_adds_the_machinery_per_trial():
    raw = {
        "name": "p",
        "data": {"dataset": "digits"},
        "model": {"arch": "digits_cnn"},
        "prune": {"sparsity": {"uniform": [0.1, 0.9]}},
        "finetune": {"method": "ce", "epochs": 1},
        "search": {"mode": "optimize", "num_samples": 10},
    }
    spec = parse_spec(raw, name="p", storage="/tmp/unused")
    configs = sample_configs(spec, n=4)
    rates = hand_rates(1e-6, configs)

    def wall(n: int) -> float:
        cost = estimate_cost(spec, configs, [], n_trials=n, workers=1, rates=rates)
        return cost.wall_seconds

    per_trial = (wall(1000) - wall(100)) / 900
    expected = FITTED.driver_s + FITTED.worker_s + OVERHEAD["epoch"]  # one worker, one epoch
    assert per_trial == pytest.approx(expected, rel=0.01)
