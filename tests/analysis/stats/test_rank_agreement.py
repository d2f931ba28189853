"""The report's response choice and the primary-vs-strong rank agreement."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.document.build import build_report
from analysis.document.layout import blocks
from analysis.render.markdown import render_markdown
from analysis.stats.rank_agreement import agreement_lines, choose_response, rank_agreement
from tests.support.analysis_tables import planted_trials, write_experiment


def _with_strong(masked_level: str | None = None, seed: int = 0):
    """Planted trials; strong_acc = robust_acc minus a few points of noise, and minus 20
    points more for one criterion's trials (masking that PGD does not see)."""
    trials = planted_trials({"criterion": 0.4, "finetune_method": 0.3}, seeds=2, n=240, rng=seed)
    rng = np.random.default_rng(seed)
    strong = trials["robust_acc"] - 0.03 - rng.normal(0, 0.005, len(trials))
    if masked_level is not None:
        strong = strong.where(trials["criterion"] != masked_level, strong - 0.2)
    trials["strong_acc"] = strong.clip(0, 1)
    trials["strong_n"] = 1000
    trials["strong_label"] = "APGD-CE + APGD-T (3 targets), ..., on 1000 test images"
    return trials


def test_agreement_is_high_when_the_strong_suite_only_shifts_and_names_what_moves():
    honest = rank_agreement(_with_strong())
    assert not isinstance(honest, str) and honest.tau > 0.9 and honest.lo <= honest.tau
    assert honest.levels.empty  # no factor level changes order
    masked = rank_agreement(_with_strong("l1"))
    assert not isinstance(masked, str) and masked.tau < honest.tau and masked.hi < honest.lo
    moved = masked.levels[masked.levels["factor"] == "criterion"]
    assert "l1" in set(moved["level"])  # the masked criterion falls in the strong ranking
    assert masked.moved["rank_change"].abs().iloc[0] > 20


def test_response_choice_and_the_report_states_it(tmp_path):
    trials = _with_strong("l1")
    assert choose_response(trials, None)[0] == "strong_acc"
    partial = trials.copy()
    partial.loc[partial.index[:3], "strong_acc"] = np.nan
    assert choose_response(partial, None)[0] == "robust_acc"
    assert choose_response(trials, "clean_acc")[0] == "clean_acc"
    lines = agreement_lines(trials, "strong_acc", "every completed trial has it")
    assert "Kendall's tau-b" in lines[1] and "on 1000 test images" in lines[1]
    assert "validation attack" in lines[0]
    assert any(line.startswith("criterion = l1") for line in lines)
    report = build_report([write_experiment(tmp_path / "x", trials)], resamples=20, draw=False)
    assert report.primary.response == "strong_acc"
    assert any("Kendall" in line for line in report.agreement)
    summary = render_markdown(blocks(report)).split("\n\n")[1]  # the first paragraph
    assert "The response analysed below is the strong robust accuracy (strong_acc)" in summary
    assert "on 1000 test images" in summary
    old = build_report(
        [write_experiment(tmp_path / "y", planted_trials({}, n=60, seeds=2))],
        resamples=20,
        draw=False,
    )
    assert old.primary.response == "robust_acc"
    assert "no completed trial has the strong response" in old.agreement[-1]


@pytest.mark.parametrize("n", [0, 2])
def test_too_few_trials_is_a_reason_not_a_number(n):
    assert isinstance(rank_agreement(_with_strong().head(n)), str)
