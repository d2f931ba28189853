"""The one validator, on sections other than the trial's (a search spec declares its own)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import pytest

from robprune.config.typed_mapping import Check, Choice, Interval, build, check_tree
from robprune.errors import ConfigError


def _objective(text: str) -> None:
    """metric:max or metric:min."""
    if not isinstance(text, str) or text.rpartition(":")[2] not in ("max", "min"):
        raise ValueError(f"must be 'metric:max' or 'metric:min', got {text!r}")


@dataclass(frozen=True, kw_only=True)
class Scheduler:
    name: Annotated[str, Choice(("asha", "none"))] = "asha"
    grace_period: Annotated[int, Interval(1)] = 1
    reduction_factor: Annotated[int, Interval(2)] = 3


@dataclass(frozen=True, kw_only=True)
class Search:
    mode: Annotated[str, Choice(("optimize", "grid", "random"))] = "optimize"
    objectives: tuple[Annotated[str, Check(_objective)], ...] = ("robust_acc:max",)
    num_samples: Annotated[int | None, Interval(1)] = None
    gpu: Annotated[float, Interval(0, 1, hi_open=True)] = 0.0
    scheduler: Scheduler = field(default_factory=Scheduler)

    def validate(self, path: str) -> None:
        if self.mode == "grid" and self.num_samples is not None:
            raise ConfigError(f"{path}.num_samples", "grid mode enumerates the factorial")


@pytest.mark.parametrize(
    ("data", "path", "needle"),
    [
        ({"mode": "bayes"}, "search.mode", "allowed: optimize, grid, random"),
        ({"objectives": ["acc:up"]}, "search.objectives[0]", "metric:max"),
        ({"objectives": "acc:max"}, "search.objectives", "must be a list"),
        ({"num_samples": 0}, "search.num_samples", "[1, inf)"),
        ({"num_samples": "10"}, "search.num_samples", "must be an integer"),
        ({"gpu": 1}, "search.gpu", "[0, 1)"),
        ({"scheduler": {"reduction_factor": 1}}, "search.scheduler.reduction_factor", "[2, inf)"),
        ({"scheduler": {"patience": 1}}, "search.scheduler.patience", "unknown key"),
        ({"mode": "grid", "num_samples": 5}, "search.num_samples", "factorial"),
    ],
)
def test_errors_name_the_key_path(data, path, needle):
    with pytest.raises(ConfigError) as info:
        build(Search, data, "search")
    assert info.value.path == path
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_values_are_typed_and_defaults_filled():
    search = build(Search, {"num_samples": 1e2, "objectives": ["a:max", "b:min"], "gpu": 0.5})
    assert search.num_samples == 100 and isinstance(search.num_samples, int)
    assert search.objectives == ("a:max", "b:min")
    assert search.scheduler == Scheduler()


def test_defaults_and_directly_built_records_are_checked_too():
    check_tree(Search())
    with pytest.raises(ConfigError, match=r"^scheduler\.grace_period: must be in \[1, inf\)"):
        check_tree(Search(scheduler=Scheduler(grace_period=0)))


def test_constraints_describe_what_is_allowed():
    assert Interval(0, 0.5, lo_open=True).describe() == "(0, 0.5]"
    assert Choice(("a", "b")).describe() == "a, b"
    assert Check(_objective).describe() == "metric:max or metric:min."
