"""Lift statistics against published values: Wilson, Newcombe, Fleiss."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from onetoone.errors import InvalidInputError
from onetoone.measure.lift import lift_from_counts, sample_size, wilson_interval

Z95 = NormalDist().inv_cdf(0.975)


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    (81, 263, 0.2553, 0.3662),  # Newcombe 1998a, table I, example (a)
    (15, 148, 0.0624, 0.1605),  # example (b)
    (0, 20, 0.0, 0.1611),  # example (c)
    (1, 29, 0.0061, 0.1718),  # example (d)
])
def test_wilson_interval_as_published(k: int, n: int, low: float, high: float) -> None:
    assert wilson_interval(k / n, n, Z95) == pytest.approx((low, high), abs=1e-4)


@pytest.mark.parametrize(("a", "m", "b", "n", "low", "high"), [
    (56, 70, 48, 80, 0.0524, 0.3339),  # Newcombe 1998b, table II, example (a), method 10
    (9, 10, 3, 10, 0.1705, 0.8090),  # example (b)
    (5, 56, 0, 29, -0.0381, 0.1926),  # example (d)
])
def test_newcombe_interval_of_the_difference_as_published(a: int, m: int, b: int, n: int,
                                                          low: float, high: float) -> None:
    result = lift_from_counts("x", {True: (m, a / m, 0.0, 0.0), False: (n, b / n, 0.0, 0.0)})
    assert result.difference == pytest.approx(a / m - b / n)
    assert (result.difference_low, result.difference_high) == pytest.approx((low, high),
                                                                           abs=1e-4)


def test_sample_size_to_detect_a_lift_as_fleiss() -> None:
    # 15 % -> 25 %, 5 % two-sided, 80 % power: 250 per group (Fleiss 1981, no correction)
    assert sample_size(0.15, 0.10) == 250
    assert sample_size(0.15, 0.0) is None and sample_size(0.95, 0.10) is None
    assert sample_size(0.02, 0.002) > 50_000  # a small lift on a rare conversion


def test_status_says_what_the_figures_allow() -> None:
    def status(n_t: int, p_t: float, n_c: int, p_c: float) -> str:
        return lift_from_counts(None, {True: (n_t, p_t, 10.0, 4.0),
                                       False: (n_c, p_c, 8.0, 4.0)}).status

    assert status(400, 0.25, 200, 0.15) == "significant"
    assert status(40, 0.25, 20, 0.15) == "not enough data yet"
    assert status(5000, 0.150, 5000, 0.151) == "not enough data yet"
    assert status(400, 0.25, 0, 0.0).startswith("no control group")
    empty = lift_from_counts(None, {True: (400, 0.25, 10.0, 4.0)})
    assert all(v is None or not (isinstance(v, float) and math.isnan(v))
               for v in empty.as_dict().values())  # JSON-ready: never NaN
    with pytest.raises(InvalidInputError):
        lift_from_counts(None, {}, confidence=1.5)


def test_relative_lift_and_welch_interval() -> None:
    result = lift_from_counts(None, {True: (400, 0.25, 12.0, 100.0),
                                     False: (200, 0.15, 7.5, 64.0)})
    assert result.relative == pytest.approx(0.25 / 0.15 - 1)
    assert result.relative_low < result.relative < result.relative_high
    se = math.sqrt(100 / 400 + 64 / 200)
    # Welch's df is large here: the t quantile is close to the normal one
    assert result.value_difference_low == pytest.approx(4.5 - 1.97 * se, abs=0.02)
    assert result.sample_size_needed == 250
