"""The search machinery's overhead in `robprune plan`: fitted to the recorded bench_scale runs
(with the square term they show), and part of the plan's wall time."""

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
    assert 0 < FITTED.driver_s < 1


def test_a_fit_recovers_a_known_model_and_needs_three_sizes():
    truth = Overhead(search_s=3.0, driver_s=0.05, growth_s=2e-05)
    runs = [
        {"size": n, "driver_cpu_per_trial_s": truth.driver_seconds(n) / n} for n in (20, 200, 2000)
    ]
    assert fit(runs) == truth
    with pytest.raises(ValueError, match="at least 3 sizes"):
        fit(runs[:2])


def test_the_fitted_driver_seconds_grow_faster_than_the_trials():
    """The recorded runs have a square term: per trial, 2,000 cost more than 200."""
    assert FITTED.growth_s > 0
    assert FITTED.driver_seconds(2000) / 2000 > FITTED.driver_seconds(200) / 200


def test_the_plan_wall_time_adds_the_drivers_seconds_per_trial():
    raw = {
        "name": "p",
        "data": {"dataset": "digits"},
        "model": {"arch": "digits_cnn"},
        "prune": {"sparsity": {"uniform": [0.1, 0.9]}},
        "finetune": {"method": "ce", "epochs": 1},
        "search": {"mode": "optimize", "num_samples": 10, "scheduler": {"name": "none"}},
    }
    spec = parse_spec(raw, name="p", storage="/tmp/unused")
    configs = sample_configs(spec, n=4)
    rates = hand_rates(1e-6, configs)

    def wall(n: int) -> float:
        return estimate_cost(spec, configs, [], n_trials=n, workers=1, rates=rates).wall_seconds

    per_trial = (wall(1000) - wall(100)) / 900
    driver = (FITTED.driver_seconds(1000) - FITTED.driver_seconds(100)) / 900
    assert per_trial == pytest.approx(driver + OVERHEAD["epoch"], rel=0.01)
