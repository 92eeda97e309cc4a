"""One view of survival and revenue: 12-month revenue and lifetime value cannot disagree."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnrisk.errors import ConfigError
from churnrisk.models.clv import (
    expected_months_retained,
    lifetime_clv,
    monthly_retention,
    survival_revenue,
)

# a monthly discount factor v = 0.8: (1 + rate) ** (-1 / 12) = 0.8
RATE = 1.25**12 - 1


def test_the_worked_example_of_the_docstring():
    # R = 300, p = 0.5 over 30 days (r = 0.5), n = 2 months, v = 0.8, margin 0.5
    # window: 0.5 * 300 * (1 + 0.8) / 2 = 135; E = 1 + 0.5 = 1.5, run rate 300 / 1.5 = 200
    # tail: 0.5 * 200 * (0.5 * 0.8) ** 2 / (1 - 0.4) = 80 / 3
    out = lifetime_clv(
        [300.0], [0.5], horizon_days=30, revenue_months=2, margin=0.5, annual_discount_rate=RATE
    )
    assert out[0] == pytest.approx(135 + 80 / 3, rel=1e-12)


def test_survival_revenue_is_mrr_times_expected_months_retained():
    # 90-day probability 1 - 0.9 ** 3: monthly retention 0.9; 3 months: 1 + 0.9 + 0.81
    p = [1 - 0.9**3, 0.0, 1.0]
    assert monthly_retention(p, horizon_days=90) == pytest.approx([0.9, 1.0, 0.0])
    assert expected_months_retained(p, horizon_days=90, months=3) == pytest.approx([2.71, 3.0, 1.0])
    out = survival_revenue([100.0, 100.0, np.nan], p, horizon_days=90, months=3)
    assert out == pytest.approx([271.0, 300.0, 0.0])


def test_on_the_survival_view_the_tail_continues_mrr():
    # R = MRR x E, so the run rate after the window is MRR: with n = 1 (E = 1, ā = 1)
    # the value is Gupta and Lehmann's m * MRR * sum_t (r v)^t = m * MRR / (1 - r v)
    mrr, p = 100.0, 0.1  # 30-day horizon: r = 0.9
    revenue = survival_revenue([mrr], [p], horizon_days=30, months=1)
    out = lifetime_clv(
        revenue, [p], horizon_days=30, revenue_months=1, margin=0.8, annual_discount_rate=RATE
    )
    assert out[0] == pytest.approx(0.8 * 100 / (1 - 0.9 * 0.8), rel=1e-12)


def test_a_certain_churner_is_worth_its_window_only():
    out = lifetime_clv(
        [1200.0], [1.0], horizon_days=90, revenue_months=12, margin=1.0, annual_discount_rate=0.1
    )
    v = 1.1 ** (-1 / 12)
    assert out[0] == pytest.approx(1200 * np.mean(v ** np.arange(12)), rel=1e-12)


def test_bad_settings_say_what_is_wrong():
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        lifetime_clv(
            [1.0], [1.5], horizon_days=90, revenue_months=12, margin=0.8, annual_discount_rate=0.1
        )
    with pytest.raises(ConfigError, match="annual_discount_rate > 0"):
        lifetime_clv(
            [1.0], [0.5], horizon_days=90, revenue_months=12, margin=0.8, annual_discount_rate=0.0
        )
    with pytest.raises(ConfigError, match="at least 1 month"):
        expected_months_retained([0.5], horizon_days=90, months=0)


probability = st.floats(0.0, 1.0, allow_nan=False)
revenue = st.floats(0.0, 1e7, allow_nan=False)
months = st.integers(1, 60)
horizon = st.integers(1, 730)
margin = st.floats(0.01, 1.0)
discount = st.floats(0.001, 1.0)


@settings(max_examples=300, deadline=None)
@given(revenue, probability, horizon, months, margin, discount)
def test_lifetime_value_is_never_below_the_discounted_margin_of_the_window(r, p, days, n, m, rate):
    out = lifetime_clv(
        [r], [p], horizon_days=days, revenue_months=n, margin=m, annual_discount_rate=rate
    )
    v = (1 + rate) ** (-1 / 12)
    floor = m * r * np.mean(v ** np.arange(n))
    assert out[0] >= floor * (1 - 1e-12)
    assert np.isfinite(out[0])


@settings(max_examples=300, deadline=None)
@given(revenue, probability, probability, horizon, months, margin, discount)
def test_lifetime_value_falls_as_the_churn_probability_rises(r, p, q, days, n, m, rate):
    low, high = sorted((p, q))
    out = lifetime_clv(
        [r, r],
        [low, high],
        horizon_days=days,
        revenue_months=n,
        margin=m,
        annual_discount_rate=rate,
    )
    assert out[1] <= out[0] * (1 + 1e-12) + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 1e6), probability, probability, horizon, months, margin, discount)
def test_on_the_survival_view_both_figures_fall_as_the_probability_rises(
    mrr, p, q, days, n, m, rate
):
    low, high = sorted((p, q))
    rev = survival_revenue([mrr, mrr], [low, high], horizon_days=days, months=n)
    assert rev[1] <= rev[0] * (1 + 1e-12) + 1e-9
    out = lifetime_clv(
        rev, [low, high], horizon_days=days, revenue_months=n, margin=m, annual_discount_rate=rate
    )
    assert out[1] <= out[0] * (1 + 1e-12) + 1e-9
