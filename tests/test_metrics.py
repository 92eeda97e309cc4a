"""Tests of churnrisk.metrics on hand-built data sets with hand-computed values."""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnrisk.dataset import Dataset
from churnrisk.errors import ConfigError, DataError
from churnrisk.metrics import (
    METRIC_KEYS,
    Period,
    PeriodNotCoveredError,
    compute_metrics,
    last_complete_month,
    parse_period,
    period_metrics,
)

OCT = parse_period("2026-10")


def _df(columns: list[str], rows: list[tuple[object, ...]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def _october_frames() -> dict[str, pd.DataFrame]:
    """October 2026: start state 30 Sep, end state 31 Oct.

    account  segment  subscriptions (start, end exclusive, mrr)            30 Sep  31 Oct  move
    a        smb      2026-01-01 .. -          100                          100     100     -
    b        ent      2026-03-01 .. 10-15 50; 10-15 .. - 80                 50      80      exp 30
    c        ent      2026-05-01 .. 10-10 200; 10-10 .. - 150               200     150     contr 50
    d        smb      2026-02-01 .. 10-31 40 (last paid day 30 Oct)         40      0       churn 40
    e        ent      2026-04-01 .. 11-01 60 (last paid day 31 Oct)         60      60      -
    f        smb      2026-10-01 .. - 30 (starts on p0)                     0       30      new 30
    g        smb      2026-01-01 .. 06-01 20; 10-20 .. - 25                 0       25      react 25
    h        ent      2026-10-10 .. - 45, referred_by a                     0       45      new 45
    i        ent      2026-10-05 .. 10-20 10                                0       0       -
    """
    accounts = _df(
        ["account_id", "created_at", "segment", "acquisition_cost", "referred_by"],
        [
            ("a", "2025-12-01", "smb", 100.0, None),
            ("b", "2026-02-01", "ent", None, None),
            ("c", "2026-04-01", "ent", None, None),
            ("d", "2026-01-15", "smb", None, None),
            ("e", "2026-03-01", "ent", None, None),
            ("f", "2026-10-01 00:00", "smb", 300.0, None),
            ("g", "2025-12-20", "smb", 50.0, None),
            ("h", "2026-10-05 00:00", "ent", 500.0, "a"),
            ("i", "2026-10-02 00:00", "ent", 1000.0, "a"),
        ],
    )
    subscriptions = _df(
        ["account_id", "start_date", "end_date", "mrr"],
        [
            ("a", "2026-01-01", None, 100.0),
            ("b", "2026-03-01", "2026-10-15", 50.0),
            ("b", "2026-10-15", None, 80.0),
            ("c", "2026-05-01", "2026-10-10", 200.0),
            ("c", "2026-10-10", None, 150.0),
            ("d", "2026-02-01", "2026-10-31", 40.0),
            ("e", "2026-04-01", "2026-11-01", 60.0),
            ("f", "2026-10-01", None, 30.0),
            ("g", "2026-01-01", "2026-06-01", 20.0),
            ("g", "2026-10-20", None, 25.0),
            ("h", "2026-10-10", None, 45.0),
            ("i", "2026-10-05", "2026-10-20", 10.0),
        ],
    )
    events = _df(
        ["account_id", "user_id", "timestamp"],
        [
            ("a", "u1", "2026-09-30 23:00"),  # before the period
            ("a", "u1", "2026-10-01 00:00"),
            ("a", "u1", "2026-10-01 08:00"),  # same user, same day
            ("a", "u1", "2026-10-02 09:00"),
            ("a", "u2", "2026-10-02 10:00"),
            ("b", "u1", "2026-10-31 23:59:59"),  # same user_id, other account: other user
            ("f", "u1", "2026-10-03 12:00"),
            ("i", "u1", "2026-11-01 00:00"),  # after the period
        ],
    )
    tickets = _df(
        ["ticket_id", "account_id", "created_at", "contacts"],
        [
            ("t1", "a", "2026-10-01 00:00", 1),
            ("t2", "b", "2026-10-10", 3),
            ("t3", "c", "2026-10-20", 1),
            ("t4", "d", "2026-10-25", None),
            ("t5", "e", "2026-10-30", 2),
            ("t6", "f", "2026-11-01 00:00", 1),  # after
            ("t7", "a", "2026-09-30 12:00", 2),  # before
        ],
    )
    tickets["contacts"] = tickets["contacts"].astype("Int64")
    nps = _df(
        ["account_id", "responded_at", "score"],
        [
            ("a", "2026-10-03", 10),
            ("b", "2026-10-04", 9),
            ("f", "2026-10-05", 9),
            ("c", "2026-10-06", 7),
            ("d", "2026-10-07", 3),
            ("e", "2026-09-30 23:59:59", 10),  # before
            ("e", "2026-11-01 00:00", 0),  # after
        ],
    )
    orders = _df(
        ["account_id", "ordered_at", "amount"],
        [
            ("a", "2026-10-02", 100.0),
            ("a", "2026-10-09", 50.0),
            ("b", "2026-10-03", 30.0),
            ("c", "2026-10-04", 10.0),
            ("c", "2026-10-05", 10.0),
            ("c", "2026-10-31 23:00", 20.0),
            ("e", "2026-10-06", 60.0),
            ("d", "2026-09-30 23:59", 999.0),  # before
            ("f", "2026-11-01 00:00", 999.0),  # after
        ],
    )
    costs = _df(
        ["account_id", "month", "amount"],
        [
            ("a", "2026-10-01", 20.0),
            ("b", "2026-10-01", 30.0),
            ("c", "2026-10-01", 50.0),
            ("d", "2026-09-01", 999.0),  # other month
            ("e", "2026-11-01", 999.0),  # other month
        ],
    )
    return {
        "accounts": accounts,
        "subscriptions": subscriptions,
        "events": events,
        "tickets": tickets,
        "nps": nps,
        "orders": orders,
        "costs": costs,
    }


@pytest.fixture(scope="module")
def october() -> Dataset:
    return Dataset.from_frames(_october_frames())


@pytest.fixture(scope="module")
def oct_metrics(october: Dataset) -> dict[str, object]:
    return compute_metrics(october, OCT)


# ----------------------------------------------------------------------- periods


@pytest.mark.parametrize(
    ("text", "start", "end", "label"),
    [
        ("2026-10", date(2026, 10, 1), date(2026, 11, 1), "2026-10"),
        ("2026-12", date(2026, 12, 1), date(2027, 1, 1), "2026-12"),
        ("2026Q4", date(2026, 10, 1), date(2027, 1, 1), "2026Q4"),
        ("2026q1", date(2026, 1, 1), date(2026, 4, 1), "2026Q1"),
        (" 2026-01 ", date(2026, 1, 1), date(2026, 2, 1), "2026-01"),
    ],
)
def test_parse_period(text: str, start: date, end: date, label: str) -> None:
    assert parse_period(text) == Period(start, end, label)


@pytest.mark.parametrize(
    "text",
    [
        "2026-13",
        "2026-00",
        "2026-1",
        "2026Q5",
        "2026Q0",
        "26-10",
        "",
        "\uff12\uff10\uff12\uff16-10",
    ],
)
def test_parse_period_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid period .*YYYY-MM \(2026-10\)"):
        parse_period(text)


@pytest.mark.parametrize("text", ["0000-01", "0000Q1", "9999-12", "9999Q4"])
def test_periods_outside_the_calendar_are_refused_not_crashed(text: str) -> None:
    with pytest.raises(
        ConfigError, match=rf"^period '{text}' is out of range: periods run from 0001-01 to 9999-11"
    ):
        parse_period(text)
    assert parse_period("9999-11").end == date(9999, 12, 1)
    assert parse_period("0001Q1").start == date(1, 1, 1)


def test_period_months() -> None:
    assert parse_period("2026-02").months == 1.0
    assert parse_period("2026Q3").months == 3.0
    assert parse_period("2026Q3").days == 92


def test_empty_period_rejected() -> None:
    with pytest.raises(ConfigError, match="is empty"):
        Period(date(2026, 1, 1), date(2026, 1, 1), "x")


def _minimal(created: str) -> dict[str, pd.DataFrame]:
    return {
        "accounts": _df(["account_id", "created_at"], [("a", "2026-01-01")]),
        "subscriptions": _df(
            ["account_id", "start_date", "end_date", "mrr"], [("a", created, None, 1.0)]
        ),
    }


@pytest.mark.parametrize(
    ("latest_event", "label"),
    [
        ("2026-11-15 10:00", "2026-10"),
        ("2026-11-01 00:00", "2026-10"),  # November has only begun
        ("2026-10-31 23:00", "2026-10"),  # data on the last day of October: October is whole
        ("2026-10-30 23:00", "2026-09"),  # 31 October not observed yet
        ("2027-01-03 00:00", "2026-12"),  # year boundary
    ],
)
def test_last_complete_month(latest_event: str, label: str) -> None:
    frames = _minimal("2026-02-01")
    frames["events"] = _df(
        ["account_id", "user_id", "timestamp"],
        [("a", "u", "2026-03-01"), ("a", "u", latest_event)],
    )
    period = last_complete_month(Dataset.from_frames(frames))
    assert period == parse_period(label)


def test_last_complete_month_uses_every_listed_table(october: Dataset) -> None:
    # latest: the order / nps / ticket / event at 2026-11-01 00:00 -> October
    assert last_complete_month(october).label == "2026-10"
    # only accounts and subscriptions: latest subscription start 2026-03-05
    assert last_complete_month(Dataset.from_frames(_minimal("2026-03-05"))).label == "2026-02"


def test_last_complete_month_without_dates() -> None:
    frames = {
        "accounts": _df(["account_id", "created_at"], []),
        "subscriptions": _df(["account_id", "start_date", "end_date", "mrr"], []),
    }
    with pytest.raises(DataError, match="no dates"):
        last_complete_month(Dataset.from_frames(frames))


# ------------------------------------------------------------------- October, all


def test_result_shape(oct_metrics: dict[str, Any]) -> None:
    m = oct_metrics
    assert list(m) == ["period", "segment", *METRIC_KEYS, "notes", "units"]
    assert len(METRIC_KEYS) == 34
    # every metric says what it measures; money carries no currency (the data has none)
    assert list(m["units"]) == list(METRIC_KEYS)
    assert {key: m["units"][key] for key in ("customers_churned", "churn_rate", "mrr_new")} == {
        "customers_churned": "accounts",
        "churn_rate": "percent",
        "mrr_new": "money per month",
    }
    assert [m["units"][k] for k in ("nrr", "quick_ratio", "arpa", "nps", "dau_mau")] == [
        "percent",
        "ratio",
        "money per month",
        "score",
        "ratio",
    ]
    assert [m["units"][k] for k in ("purchase_frequency", "clv", "ltv_cac")] == [
        "orders per account",
        "money",
        "ratio",
    ]
    assert [m["units"][k] for k in ("time_to_first_value_days", "cs_roi")] == ["days", "money"]
    assert m["period"] == "2026-10"
    assert m["segment"] is None
    for key in METRIC_KEYS:
        expected = int if key.startswith("customers_") else float
        assert type(m[key]) is expected, key


def test_october_mrr_movements(oct_metrics: dict[str, Any]) -> None:
    m = oct_metrics
    # 30 Sep: a 100, b 50, c 200, d 40, e 60            -> S = 5, 450
    # 31 Oct: a 100, b 80, c 150, e 60, f 30, g 25, h 45 -> E = 7, 490
    assert m["customers_start"] == 5
    assert m["customers_end"] == 7
    assert m["customers_new"] == 2  # f (starts on p0), h; i is 0 -> 0
    assert m["customers_reactivated"] == 1  # g
    assert m["customers_churned"] == 1  # d (end_date 31 Oct); e (end 1 Nov) stays
    assert m["mrr_start"] == 450.0
    assert m["mrr_end"] == 490.0
    assert m["mrr_new"] == 75.0  # 30 + 45
    assert m["mrr_expansion"] == 30.0  # b 50 -> 80
    assert m["mrr_contraction"] == 50.0  # c 200 -> 150
    assert m["mrr_churned"] == 40.0  # d
    assert m["mrr_reactivation"] == 25.0  # g
    # 450 + 75 + 30 + 25 - 50 - 40 = 490
    assert (
        m["mrr_start"]
        + m["mrr_new"]
        + m["mrr_expansion"]
        + m["mrr_reactivation"]
        - m["mrr_contraction"]
        - m["mrr_churned"]
        == m["mrr_end"]
    )


def test_october_rates(oct_metrics: dict[str, Any]) -> None:
    m = oct_metrics
    assert m["churn_rate"] == 20.0  # 1 / 5 * 100
    assert m["retention_rate"] == 80.0  # (7 - 2 - 1) / 5 * 100
    assert m["cohort_retention_rate"] == 80.0  # (5 - 1) / 5 * 100
    assert m["nrr"] == pytest.approx(86.666666666667)  # (450 + 30 - 50 - 40) / 450 * 100
    assert m["grr"] == 80.0  # (450 - 50 - 40) / 450 * 100
    assert m["net_mrr_churn_rate"] == pytest.approx(13.333333333333)  # 100 - 86.67
    assert m["gross_mrr_churn_rate"] == 20.0  # 100 - 80
    assert m["quick_ratio"] == pytest.approx(130 / 90)  # (75 + 30 + 25) / (50 + 40)
    assert m["arpa"] == 70.0  # 490 / 7


def test_october_other_families(oct_metrics: dict[str, Any]) -> None:
    m = oct_metrics
    # NPS: 10, 9, 9, 7, 3 in October -> promoters 3/5, detractors 1/5
    assert m["promoters_pct"] == 60.0
    assert m["detractors_pct"] == 20.0
    assert m["nps"] == 40.0
    # users (a,u1) 1+2 Oct, (a,u2) 2 Oct, (b,u1) 31 Oct, (f,u1) 3 Oct: 5 user-days, 4 users
    assert m["dau_mau"] == pytest.approx(5 / 31 / 4)
    # contacts 1, 3, 1, 2 (+ 1 null left out): 2 / 4
    assert m["fcr_rate"] == 50.0
    # a 2 orders, b 1, c 3, e 1: repeat 2/4, 7 orders / 4 accounts, 280 / 7
    assert m["repeat_customer_rate"] == 50.0
    assert m["purchase_frequency"] == 1.75
    assert m["avg_order_value"] == 40.0
    # clv = arpa / (churn / 100) = 70 / 0.2
    assert m["clv"] == pytest.approx(350.0)
    # new accounts f (300) and h (500): mean 400; i (1000) is not new, g (50) reactivated
    assert m["ltv_cac"] == pytest.approx(350.0 / 400.0)
    # costs with month in October: 20 + 30 + 50 = 100, / S = 5
    assert m["customer_retention_cost"] == 20.0
    # f 2.5 days (1 Oct 00:00 -> 3 Oct 12:00), i 30 days (2 Oct -> 1 Nov), h no event
    assert m["time_to_first_value_days"] == 16.25
    # retained 450 - 50 - 40 = 360, + expansion 30 + h referred 45 - costs 100
    assert m["cs_roi"] == 335.0
    assert m["notes"] == {
        "fcr_rate": (
            "1 of 5 tickets created in the period had no contacts value"
            " and were left out of both counts"
        ),
        "time_to_first_value_days": (
            "1 of 3 accounts created in the period had no event and were left out"
        ),
    }


def test_segment_filter(october: Dataset) -> None:
    m = compute_metrics(october, OCT, segment="smb")  # a, d, f, g
    assert m["segment"] == "smb"
    # 30 Sep: a 100, d 40; 31 Oct: a 100, f 30, g 25
    assert (m["customers_start"], m["customers_end"]) == (2, 3)
    assert (m["customers_new"], m["customers_reactivated"], m["customers_churned"]) == (1, 1, 1)
    assert (m["mrr_start"], m["mrr_end"]) == (140.0, 155.0)
    assert (m["mrr_new"], m["mrr_reactivation"], m["mrr_churned"]) == (30.0, 25.0, 40.0)
    assert (m["mrr_expansion"], m["mrr_contraction"]) == (0.0, 0.0)
    assert m["churn_rate"] == 50.0  # 1 / 2
    assert m["retention_rate"] == 50.0  # (3 - 2) / 2
    assert m["nrr"] == pytest.approx(100 / 140 * 100)  # (140 - 40) / 140
    assert m["quick_ratio"] == pytest.approx(55 / 40)  # (30 + 25) / 40
    assert m["arpa"] == pytest.approx(155 / 3)
    assert m["nps"] == pytest.approx(100 / 3)  # 10, 9, 3: 2/3 - 1/3
    assert m["dau_mau"] == pytest.approx(4 / 31 / 3)  # (a,u1) x2, (a,u2), (f,u1)
    assert m["fcr_rate"] == 100.0  # t1 (1); t4 null left out
    assert m["repeat_customer_rate"] == 100.0  # a only, 2 orders
    assert m["avg_order_value"] == 75.0  # (100 + 50) / 2
    assert m["clv"] == pytest.approx((155 / 3) / 0.5)
    assert m["ltv_cac"] == pytest.approx((155 / 3) / 0.5 / 300)  # new: f only
    assert m["customer_retention_cost"] == 10.0  # a 20 / 2
    assert m["cs_roi"] == 80.0  # (140 - 0 - 40) + 0 + 0 (f not referred) - 20
    assert m["time_to_first_value_days"] == 2.5  # f only


def test_a_segment_without_accounts_narrows_to_nothing_and_says_so(october: Dataset) -> None:
    m = compute_metrics(october, OCT, segment="mid")
    assert (m["customers_start"], m["customers_end"], m["mrr_end"]) == (0, 0, 0)
    assert next(iter(m["notes"])) == "segment"
    assert m["notes"]["segment"] == "no account has segment 'mid'; the accounts have: 'ent', 'smb'"
    assert "segment" not in compute_metrics(october, OCT, segment="smb")["notes"]


# The october world's last observation is an event, a ticket, an answer and an order at
# 2026-11-01 00:00, so the data covers up to 2026-11-01 (observation ends 2026-11-02);
# its first subscription starts on 2026-01-01.
@pytest.mark.parametrize(
    ("label", "message"),
    [
        (
            "2026-11",
            "period 2026-11 runs to 2026-11-30, after the data ends: the last day observed is"
            " 2026-11-01, and days nobody observed would count as churn; ask for 2026-10 or"
            " an earlier period",
        ),
        (
            "2026Q4",
            "period 2026Q4 runs to 2026-12-31, after the data ends: the last day observed is"
            " 2026-11-01, and days nobody observed would count as churn; ask for 2026-10 or"
            " an earlier period",
        ),
        (
            "2030-01",
            "period 2030-01 starts after the data ends: the last day observed is 2026-11-01,"
            " and days nobody observed would count as churn; ask for 2026-10 or an earlier"
            " period",
        ),
        (
            "2025-12",
            "period 2025-12 ends before the data begins: the first subscription starts on"
            " 2026-01-01; ask for a period from 2026-01 to 2026-10",
        ),
    ],
)
def test_a_period_the_data_does_not_cover_is_refused(
    october: Dataset, label: str, message: str
) -> None:
    with pytest.raises(PeriodNotCoveredError, match=f"^{re.escape(message)}$"):
        period_metrics(october, label)


def test_a_covered_period_is_the_computed_one(october: Dataset) -> None:
    assert period_metrics(october, "2026-10") == compute_metrics(october, OCT)
    # the default: the last complete month (observation ends 2026-11-02)
    assert period_metrics(october)["period"] == "2026-10"
    assert period_metrics(october, "2026-02", segment="smb") == compute_metrics(
        october, parse_period("2026-02"), segment="smb"
    )


def test_a_period_starting_with_the_data_says_its_start_state_is_empty(
    october: Dataset,
) -> None:
    m = period_metrics(october, "2026-01")
    assert m["notes"]["period"] == (
        "the data begins on 2026-01-01, so the period's start state (2025-12-31) holds no"
        " account: accounts paying before the data begins would count as new"
    )
    assert next(iter(m["notes"])) == "period"
    without = dict(m["notes"])
    del without["period"]
    assert without == compute_metrics(october, parse_period("2026-01"))["notes"]


def test_boundaries_move_to_next_month(october: Dataset) -> None:
    m = compute_metrics(october, parse_period("2026-11"))
    # e (end_date 1 Nov, last paid day 31 Oct) churns in November
    assert m["customers_churned"] == 1
    assert m["mrr_churned"] == 60.0
    # September: f (start 1 Oct) is not yet active, d still is
    sep = compute_metrics(october, parse_period("2026-09"))
    assert sep["customers_end"] == 5  # a, b, c, d, e
    assert sep["customers_new"] == 0


# ----------------------------------------------------------------- quarter periods


def _quarter() -> Dataset:
    """s1 ends 2027-01-01 (= p1 of 2026Q4), s2..s8 churn inside Q4, s9 starts on p0.

    s1 mrr 100, s2..s8 mrr 10, all from 2026-01-01; s9 mrr 50 from 2026-10-01.
    """
    ends = ["2027-01-01", "2026-10-01", "2026-10-15", "2026-11-01", "2026-11-30"]
    ends += ["2026-12-01", "2026-12-15", "2026-12-31"]
    subs = [
        (f"s{k + 1}", "2026-01-01", end, 100.0 if k == 0 else 10.0) for k, end in enumerate(ends)
    ]
    subs.append(("s9", "2026-10-01", None, 50.0))
    accounts = [(f"s{k}", "2025-12-01") for k in range(1, 10)]
    return Dataset.from_frames(
        {
            "accounts": _df(["account_id", "created_at"], accounts),
            "subscriptions": _df(["account_id", "start_date", "end_date", "mrr"], subs),
        }
    )


def test_quarter() -> None:
    ds = _quarter()
    m = compute_metrics(ds, parse_period("2026Q4"))
    # 30 Sep: s1..s8 active (s2 ends 1 Oct: last paid day 30 Sep) -> S = 8, 170
    # 31 Dec: s1 (ends 1 Jan) 100, s9 50 -> E = 2, 150; s8 (ends 31 Dec) churned
    assert (m["customers_start"], m["customers_end"]) == (8, 2)
    assert (m["customers_churned"], m["customers_new"]) == (7, 1)
    assert (m["mrr_start"], m["mrr_end"], m["mrr_churned"], m["mrr_new"]) == (170.0, 150.0, 70, 50)
    assert m["churn_rate"] == 87.5  # 7 / 8
    assert m["arpa"] == 75.0
    # monthly churn compounded: 1 - (1 - 0.875) ** (1/3) = 1 - 0.5 = 0.5; clv = 75 / 0.5
    assert m["clv"] == pytest.approx(150.0)
    # not the simple 87.5 / 3 = 29.17 % a month, which would give 75 / 0.2917 = 257.1
    assert not math.isclose(m["clv"], 75 / (0.875 / 3))
    # the quarter equals the months chained: October churns s2, s3; November s4, s5;
    # December s6, s7, s8; s1 churns in January 2027
    months = [compute_metrics(ds, parse_period(p)) for p in ("2026-10", "2026-11", "2026-12")]
    assert [x["customers_churned"] for x in months] == [2, 2, 3]
    jan = compute_metrics(ds, parse_period("2027-01"))
    assert jan["customers_churned"] == 1
    assert jan["mrr_churned"] == 100.0
    assert jan["clv"] == pytest.approx(50 / 0.5)  # arpa 50 / monthly churn 1/2


# ------------------------------------------------ missing tables and zero denominators


def test_missing_optional_tables() -> None:
    frames = _october_frames()
    ds = Dataset.from_frames(
        {"accounts": frames["accounts"], "subscriptions": frames["subscriptions"]}
    )
    m = compute_metrics(ds, OCT)
    absent = {
        "nps": ("nps", "promoters_pct", "detractors_pct"),
        "events": ("dau_mau", "time_to_first_value_days"),
        "tickets": ("fcr_rate",),
        "orders": ("repeat_customer_rate", "purchase_frequency", "avg_order_value"),
        "costs": ("customer_retention_cost", "cs_roi"),
    }
    for table, keys in absent.items():
        for key in keys:
            assert m[key] is None, key
            assert m["notes"][key] == f"table {table!r} is absent from the source"
    # the subscription metrics do not depend on them
    assert m["mrr_end"] == 490.0
    assert m["ltv_cac"] == pytest.approx(0.875)


def test_zero_denominators_and_empty_periods(october: Dataset) -> None:
    # January 2025: no subscription, no event, ticket, answer, order or cost
    m = compute_metrics(october, parse_period("2025-01"))
    assert (m["customers_start"], m["customers_end"], m["mrr_start"], m["mrr_end"]) == (0, 0, 0, 0)
    for key in METRIC_KEYS:
        if not key.startswith(("customers_", "mrr_")):
            assert m[key] is None, key
            assert m["notes"][key], key
    assert m["notes"]["churn_rate"] == (
        "no active account at the start of the period (customers_start = 0)"
    )
    assert m["notes"]["nrr"] == "no MRR at the start of the period (mrr_start = 0)"
    assert m["notes"]["quick_ratio"] == "no MRR lost in the period (contraction + churned = 0)"
    assert m["notes"]["arpa"] == "no active account at the end of the period (customers_end = 0)"
    assert m["notes"]["nps"] == "no NPS answer in the period"
    assert m["notes"]["dau_mau"] == "no event in the period"
    assert m["notes"]["fcr_rate"] == "no ticket created in the period"
    assert m["notes"]["avg_order_value"] == "no order in the period"
    assert m["notes"]["cs_roi"] == "no costs row with month in the period"
    assert m["notes"]["ltv_cac"] == "no new account in the period, so no acquisition cost"
    assert m["notes"]["time_to_first_value_days"] == "no account created in the period"


def test_no_churn_and_no_cost() -> None:
    # one steady account: churn 0 -> clv unbounded; new account without acquisition_cost
    frames = {
        "accounts": _df(["account_id", "created_at"], [("a", "2026-01-01"), ("b", "2026-10-02")]),
        "subscriptions": _df(
            ["account_id", "start_date", "end_date", "mrr"],
            [("a", "2026-01-01", None, 10.0), ("b", "2026-10-02", None, 5.0)],
        ),
        "tickets": _df(
            ["ticket_id", "account_id", "created_at", "contacts"],
            [("t1", "a", "2026-10-03", None)],
        ),
    }
    frames["tickets"]["contacts"] = frames["tickets"]["contacts"].astype("Int64")
    m = compute_metrics(Dataset.from_frames(frames), OCT)
    assert m["churn_rate"] == 0.0  # 0 / 1
    assert m["nrr"] == 100.0
    assert m["quick_ratio"] is None  # nothing lost
    assert m["clv"] is None
    assert m["notes"]["clv"] == (
        "no account churned in the period, so the expected lifespan is unbounded"
    )
    assert m["ltv_cac"] is None
    assert m["notes"]["ltv_cac"] == "no new account of the period has an acquisition_cost"
    assert m["fcr_rate"] is None  # the only ticket has no contacts value
    assert m["notes"]["fcr_rate"] == (
        "1 of 1 tickets created in the period had no contacts value"
        " and were left out of both counts"
    )


# ---------------------------------------------------------- the movement invariant


def _reference(subs: pd.DataFrame, period: Period) -> dict[str, float]:
    """Day-by-day reference: slow and obviously correct, for a handful of rows."""

    rows = list(subs.itertuples(index=False))

    def mrr(account: str, day: date) -> float:
        return float(
            sum(
                r.mrr
                for r in rows
                if r.account_id == account
                and r.start_date <= day
                and (r.end_date is None or day < r.end_date)
            )
        )

    out = dict.fromkeys(["start", "end", "new", "react", "exp", "contr", "churn"], 0.0)
    out["n_new"] = out["n_react"] = out["n_churn"] = 0
    first_day = min(subs["start_date"], default=period.start)
    for account in subs["account_id"].unique():
        m0 = mrr(account, period.start - timedelta(days=1))
        m1 = mrr(account, period.end - timedelta(days=1))
        days = (period.start - first_day).days
        paid = any(mrr(account, first_day + timedelta(days=k)) > 0 for k in range(days))
        out["start"] += m0
        out["end"] += m1
        if m0 == 0 < m1:
            key = "react" if paid else "new"
            out[key] += m1
            out["n_" + key] += 1
        elif 0 < m0 < m1:
            out["exp"] += m1 - m0
        elif 0 < m1 < m0:
            out["contr"] += m0 - m1
        elif m0 > 0 == m1:
            out["churn"] += m0
            out["n_churn"] += 1
    return out


_day = st.integers(min_value=0, max_value=120).map(lambda k: date(2026, 8, 1) + timedelta(days=k))
_row = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    _day,
    st.one_of(st.none(), st.integers(min_value=1, max_value=60)),
    st.integers(min_value=0, max_value=5).map(lambda k: 10.0 * k),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(_row, min_size=1, max_size=7),
    label=st.sampled_from(["2026-09", "2026-10", "2026-11", "2026Q4"]),
)
def test_movement_invariant_property(
    rows: list[tuple[str, date, int | None, float]], label: str
) -> None:
    subs = pd.DataFrame(
        [
            (acc, start, None if length is None else start + timedelta(days=length), mrr)
            for acc, start, length, mrr in rows
        ],
        columns=["account_id", "start_date", "end_date", "mrr"],
    )
    accounts = pd.DataFrame({"account_id": ["a", "b", "c"], "created_at": ["2026-01-01"] * 3})
    period = parse_period(label)
    m = compute_metrics(Dataset.from_frames({"accounts": accounts, "subscriptions": subs}), period)
    # integer-valued MRR: every sum is exact in floating point
    assert (
        m["mrr_start"]
        + m["mrr_new"]
        + m["mrr_expansion"]
        + m["mrr_reactivation"]
        - m["mrr_contraction"]
        - m["mrr_churned"]
        == m["mrr_end"]
    )
    ref = _reference(subs, period)
    assert (m["mrr_start"], m["mrr_end"]) == (ref["start"], ref["end"])
    assert (m["mrr_new"], m["mrr_reactivation"]) == (ref["new"], ref["react"])
    assert (m["mrr_expansion"], m["mrr_contraction"]) == (ref["exp"], ref["contr"])
    assert m["mrr_churned"] == ref["churn"]
    assert m["customers_new"] == ref["n_new"]
    assert m["customers_reactivated"] == ref["n_react"]
    assert m["customers_churned"] == ref["n_churn"]
    assert m["customers_end"] == (
        m["customers_start"]
        - m["customers_churned"]
        + m["customers_new"]
        + m["customers_reactivated"]
    )


def _generated_world(n_accounts: int, random_state: int) -> Dataset:
    """A generator-like world: accounts start, change plan, pause, leave and come back."""
    rng = np.random.default_rng(random_state)
    rows = []
    for k in range(n_accounts):
        day = date(2025, 6, 1) + timedelta(days=int(rng.integers(0, 540)))
        for _ in range(int(rng.integers(1, 5))):
            length = int(rng.integers(15, 300))
            mrr = round(float(rng.choice([0.0, 49.0, 99.5, 250.25, 1200.0])), 2)
            ongoing = rng.random() < 0.25
            rows.append((f"acc{k}", day, None if ongoing else day + timedelta(days=length), mrr))
            if ongoing:
                break
            day += timedelta(days=length + int(rng.choice([0, 0, 0, 20, 90])))
    subs = pd.DataFrame(rows, columns=["account_id", "start_date", "end_date", "mrr"])
    accounts = pd.DataFrame(
        {
            "account_id": [f"acc{k}" for k in range(n_accounts)],
            "created_at": ["2025-05-01"] * n_accounts,
        }
    )
    return Dataset.from_frames({"accounts": accounts, "subscriptions": subs})


@pytest.mark.parametrize("random_state", [0, 1])
def test_movement_invariant_on_generated_world(random_state: int) -> None:
    ds = _generated_world(300, random_state)
    labels = ["2025-09", "2026-01", "2026-06", "2026-12", "2026Q1", "2026Q3"]
    churned = 0
    for label in labels:
        m = compute_metrics(ds, parse_period(label))
        balance = (
            m["mrr_start"]
            + m["mrr_new"]
            + m["mrr_expansion"]
            + m["mrr_reactivation"]
            - m["mrr_contraction"]
            - m["mrr_churned"]
        )
        assert balance == pytest.approx(m["mrr_end"], abs=1e-6)
        assert m["customers_end"] == (
            m["customers_start"]
            - m["customers_churned"]
            + m["customers_new"]
            + m["customers_reactivated"]
        )
        assert m["retention_rate"] == pytest.approx(m["cohort_retention_rate"])
        churned += m["customers_churned"]
    assert churned > 0  # the world does move


_cents = st.sampled_from([0.1, 0.2, 0.3, 0.7, 1e-3, 99.99, 1e6 + 0.01, 12345.67])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amounts=st.lists(_cents, min_size=2, max_size=12),
    order=st.randoms(use_true_random=False),
)
def test_figures_do_not_depend_on_row_order(amounts: list[float], order: Any) -> None:
    """Money is summed exactly, so shuffling the rows changes no figure in any bit.

    With doubles, 0.1 + 0.2 + 0.3 is 0.6000000000000001 and 0.3 + 0.2 + 0.1 is 0.6, and
    DuckDB's threads add a group-by's rows in no fixed order: the same data gave two
    different avg_order_value figures in two runs before the sums became exact.
    """
    n = len(amounts)
    accounts = _df(
        ["account_id", "created_at", "acquisition_cost"],
        [(f"a{k}", "2026-10-02", amounts[k]) for k in range(n)],
    )
    subs = _df(
        ["account_id", "start_date", "end_date", "mrr"],
        [(f"a{k}", "2026-10-03", None, amounts[k]) for k in range(n)],
    )
    orders = _df(
        ["account_id", "ordered_at", "amount"],
        [(f"a{k % 3}", f"2026-10-{5 + k}", amounts[k]) for k in range(n)],
    )
    costs = _df(["account_id", "month", "amount"], [("a0", "2026-10-01", x) for x in amounts])
    frames = {"accounts": accounts, "subscriptions": subs, "orders": orders, "costs": costs}
    shuffled = {}
    for name, frame in frames.items():
        rows = list(range(len(frame)))
        order.shuffle(rows)
        shuffled[name] = frame.iloc[rows].reset_index(drop=True)
    first = compute_metrics(Dataset.from_frames(frames), OCT)
    second = compute_metrics(Dataset.from_frames(shuffled), OCT)
    assert first == second
    exact = sum(Decimal(repr(x)) for x in amounts)
    assert first["mrr_end"] == float(exact)
    assert first["avg_order_value"] == float(exact) / n
