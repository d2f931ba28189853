"""The project's one number formatter: each kind of number has one way to be written."""

from __future__ import annotations

import math

import numpy as np

from robprune.formatting import (
    cell,
    fmt_p,
    fmt_share,
    fraction,
    p_text,
    pct,
    percent,
    pts,
    share_points,
    to_percent,
    to_units,
    to_units_interval,
)


def test_accuracies_in_percent_and_points() -> None:
    assert pct(0.4567) == "45.7"
    assert pts(0.0123) == "+1.2" and pts(-0.0123) == "-1.2"
    assert pts(0.0123, signed=False) == "1.2"  # a minimum detectable effect has no sign
    assert to_units("robust_acc", 0.123) == "12.3 points"
    assert to_units_interval("robust_acc", 0.123, 0.101, 0.145) == "12.3 points [10.1, 14.5]"
    assert to_units_interval("loss", 1.23456, 1.0, 2.0) == "1.235 [1, 2]"
    assert fraction(0.45678) == "0.4568" and fraction(None) == "-"


def test_shares_p_values_and_cells() -> None:
    assert fmt_share(0.25) == "25%" and fmt_share(0.005) == "0.5%"
    assert fmt_share(0.25, 0.24, 0.26) == "25.0% [24.0, 26.0]"
    assert share_points(0.08, -0.04, 0.2) == "8 share points [-4, 20]"
    assert fmt_p(0.0123) == "p = 0.012" and fmt_p(1e-12) == "p < 1e-10"
    assert p_text(0.0123) == "0.012" and p_text(1e-12) == "< 1e-10"
    assert cell(0.123456) == "0.1235" and cell(3) == "3" and cell("l1") == "l1"
    assert cell(np.float32(2.5)) == "2.5"


def test_what_is_not_a_number_is_written_as_missing() -> None:
    for formatter in (pct, pts, p_text, cell):
        assert formatter(None) == "" and formatter(math.nan) == ""
    assert cell(None, missing="-") == "-" and cell(math.inf, missing="-") == "-"
    assert fmt_p(math.nan) == "p not computable"
    assert to_units_interval("robust_acc", math.nan, 0, 1) == "not estimable"


def test_levels_in_sentences() -> None:
    assert percent(0.4567) == "45.7%"
    assert to_percent("robust_acc", 0.4567) == "45.7%" and to_percent("loss", 1.23456) == "1.235"
