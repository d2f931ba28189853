"""The search machinery's overhead in `robprune plan`: fitted to the recorded bench_scale runs
(with the square term they show), and part of the plan's wall time."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from search.plan import estimate
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


def _runs(truth: Overhead, concurrencies: tuple[int, ...]) -> list[dict]:
    return [
        {"size": n, "concurrency": c, "driver_cpu_per_trial_s": truth.driver_seconds(n, c) / n}
        for n in (20, 200, 2000)
        for c in concurrencies
    ]


def test_a_fit_recovers_a_known_model_and_needs_three_sizes():
    truth = Overhead(search_s=3.0, driver_s=0.05, growth_s=2e-05, concurrency_s=0.002)
    assert fit(_runs(truth, (4, 16))) == truth
    with pytest.raises(ValueError, match="at least 3 sizes"):
        fit([r for r in _runs(truth, (4, 16)) if r["size"] < 2000])


def test_one_concurrency_fits_no_concurrency_term():
    """Runs at one concurrency cannot tell its cost from the per-trial one: no term."""
    truth = Overhead(search_s=3.0, driver_s=0.05, growth_s=2e-05)
    assert fit(_runs(truth, (8,))).concurrency_s == 0.0
    assert fit(_runs(truth, (8,))).driver_seconds(100, 8) == pytest.approx(
        truth.driver_seconds(100, 8), rel=1e-3
    )


def test_the_fitted_driver_seconds_grow_with_the_concurrency():
    """The recorded runs at concurrency 4 and 16 differ: more at once costs the driver more."""
    assert FITTED.concurrency_s > 0
    assert FITTED.driver_seconds(200, 16) > FITTED.driver_seconds(200, 4)


def test_the_fitted_driver_seconds_grow_faster_than_the_trials():
    """The recorded runs have a square term: per trial, 2,000 cost more than 200."""
    assert FITTED.growth_s > 0
    assert FITTED.driver_seconds(2000) / 2000 > FITTED.driver_seconds(200) / 200


@pytest.fixture
def costed():
    """The plan of an optimize search whose trials cost nothing but their overheads."""
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

    def wall(n: int, workers: int = 1) -> float:
        cost = estimate_cost(spec, configs, [], n_trials=n, workers=workers, rates=rates)
        return cost.wall_seconds

    return wall


def test_the_plan_wall_time_adds_the_drivers_seconds_per_trial(costed):
    per_trial = (costed(1000) - costed(100)) / 900
    driver = (FITTED.driver_seconds(1000) - FITTED.driver_seconds(100)) / 900
    assert per_trial == pytest.approx(driver + OVERHEAD["epoch"], rel=0.01)


def test_the_plan_costs_the_driver_at_its_workers_concurrency(costed, monkeypatch):
    with_term = costed(1000, workers=16)
    monkeypatch.setattr(estimate, "FITTED", replace(FITTED, concurrency_s=0.0))
    extra = FITTED.driver_seconds(1000, 16) - FITTED.driver_seconds(1000, 1)
    assert extra > 0
    assert with_term - costed(1000, workers=16) == pytest.approx(extra)
