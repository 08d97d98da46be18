"""The one number formatter of reports, terminal tables and compare messages."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vbench.core import fmt


@pytest.mark.parametrize("v", [None, "x", math.nan, math.inf, -math.inf, object()])
def test_what_is_not_a_finite_number_is_the_missing_mark(v):
    for f in (fmt.num, fmt.sig, fmt.pct, fmt.change, fmt.ratio, fmt.pvalue):
        assert f(v) == fmt.MISSING


def test_num_keeps_integer_digits_and_four_significant_ones():
    assert fmt.num(88904.14) == "88,904"
    assert fmt.num(12.3456) == "12.35"
    assert fmt.num(0.0034123) == "0.003412"
    assert fmt.num(0) == "0"
    assert fmt.num(np.float64(-1234.5)) == "-1,234"  # banker's rounding of .5 is fine, sign kept
    assert fmt.num("7.5") == "7.500"


def test_sig_pct_change_ratio_pvalue():
    assert fmt.sig(88904.14) == "8.89e+04"
    assert fmt.sig(0.123456, 3) == "0.123"
    assert fmt.pct(0.127) == "12.7%"
    assert fmt.pct(0.127, signed=True) == "+12.7%"
    assert fmt.change(-0.05) == "-5.0%"
    assert fmt.change(0.05, signed=False) == "5.0%"
    assert fmt.ratio(2.5) == "2.50\u00d7"
    assert fmt.pvalue(0.0004) == "<0.001" and fmt.pvalue(0.0312) == "0.031"
    assert fmt.interval(1, 2.5, fmt.ratio) == "1.00\u00d7 \u2013 2.50\u00d7"


def test_compact_axis_labels():
    assert [fmt.compact(v) for v in (950, 2000, 15000, 3e6, 0.25)] == ["950", "2k", "15k", "3M", "0.25"]
