"""The verdict on planted effects: who dominates, noise, a single factor."""

from __future__ import annotations

import pytest

from analysis.design.factorial import build_design
from analysis.stats.shares import decompose
from analysis.verdict.paragraph import verdict
from tests.support.analysis_tables import (
    PLANTED,
    planted_trials,
)


def _verdict_for(shares, balanced=True, **kw):
    trials = planted_trials(shares, balanced=balanced, seeds=3, n=600, **kw)
    design = build_design(trials)
    y = trials["robust_acc"].to_numpy()
    dec = decompose(y, design, "robust_acc", resamples=150)
    return verdict(dec, design, "robust_acc", y)


def test_verdict_fine_tuning_dominates():
    result = _verdict_for(PLANTED)
    assert result.answer == "finetune_dominates"
    assert result.dominant == "finetune_method"
    assert result.matters == ("finetune_method", "criterion")
    assert result.headline.startswith("The fine-tuning method dominates robust accuracy: both")
    assert "explains the most" not in result.text
    # the second sentence places the other factors, by their own tests (no effect planted)
    second = result.headline.split(". ", 1)[1]
    assert second.startswith("Of the other factors, the ratio rule")
    assert second.endswith("are not distinguishable from noise")


@pytest.mark.parametrize("balanced", [True, False])
def test_verdict_flips_when_the_criterion_dominates(balanced):
    result = _verdict_for({"criterion": 0.60, "finetune_method": 0.05}, balanced=balanced)
    assert result.answer == "criterion_dominates"
    assert result.dominant == "criterion"
    assert result.headline.startswith("The criterion dominates robust accuracy")
    assert "share points" in result.headline


def test_verdict_on_pure_noise_is_not_distinguishable():
    result = _verdict_for({})
    assert result.answer == "neither" and not result.distinguishable
    assert result.headline.startswith(
        "Neither the fine-tuning method nor the criterion is distinguishable from noise"
    )
    assert "80% of the time (minimum detectable effect)" in result.headline


def test_only_one_factor_with_an_effect_is_the_only_one_named():
    result = _verdict_for({"criterion": 0.3}, balanced=False)
    assert result.answer == "only_criterion" and result.matters == ("criterion",)
    assert result.headline.startswith("Only the criterion (")
