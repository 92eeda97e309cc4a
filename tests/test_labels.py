from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from churnrisk.config import LabelConfig
from churnrisk.dataset import Dataset
from churnrisk.errors import DataError
from churnrisk.features import build_features, observation_end
from churnrisk.features.labels import revenue_window_days

A = date(2025, 3, 1)
CFG = LabelConfig(horizon_days=90, grace_days=30, revenue_months=12)
FAR = date(2027, 1, 1)


def d(k: int) -> date:
    return A + timedelta(days=k)


def _ds(subs: list[tuple[str, date, date | None, float]], orders=None) -> Dataset:
    ids = sorted({s[0] for s in subs})
    frames = {
        "accounts": pd.DataFrame(
            {"account_id": ids, "created_at": [datetime(2024, 1, 1)] * len(ids)}
        ),
        "subscriptions": pd.DataFrame(
            subs, columns=["account_id", "start_date", "end_date", "mrr"]
        ),
    }
    if orders is not None:
        frames["orders"] = pd.DataFrame(orders, columns=["account_id", "ordered_at", "amount"])
    return Dataset.from_frames(frames)


def _labels(ds: Dataset, cfg: LabelConfig = CFG, observed_end: date = FAR) -> pd.DataFrame:
    df = build_features(ds, [A], labels=cfg, observed_end=observed_end)
    return df.set_index("account_id")[["churned", "revenue_next_12m"]]


def test_churn_window_edges():
    ds = _ds(
        [
            ("churn_on_a", d(-100), A, 10.0),
            ("churn_last_day", d(-100), d(89), 10.0),
            ("churn_on_horizon", d(-100), d(90), 10.0),
            ("stays", d(-100), None, 10.0),
        ]
    )
    got = _labels(ds).churned.to_dict()
    assert got == {"churn_on_a": 1, "churn_last_day": 1, "churn_on_horizon": 0, "stays": 0}


def test_grace_period():
    c = d(10)
    ds = _ds(
        [
            ("back_in_grace", d(-100), c, 10.0),
            ("back_in_grace", c + timedelta(days=29), None, 10.0),
            ("back_after_grace", d(-100), c, 10.0),
            ("back_after_grace", c + timedelta(days=30), None, 10.0),
            ("renewed", d(-100), c, 10.0),
            ("renewed", c, None, 5.0),
            ("free_plan_is_not_paying", d(-100), c, 10.0),
            ("free_plan_is_not_paying", c, None, 0.0),
        ]
    )
    got = _labels(ds).churned.to_dict()
    assert got == {
        "back_in_grace": 0,
        "back_after_grace": 1,
        "renewed": 0,
        "free_plan_is_not_paying": 1,
    }


def test_zero_grace_churns_on_the_first_unpaid_day():
    ds = _ds([("gap", d(-100), d(5), 10.0), ("gap", d(6), None, 10.0)])
    assert _labels(ds, LabelConfig(grace_days=0)).churned["gap"] == 1
    ds = _ds([("renew", d(-100), d(5), 10.0), ("renew", d(5), None, 10.0)])
    assert _labels(ds, LabelConfig(grace_days=0)).churned["renew"] == 0


def test_labels_are_null_until_their_window_closes():
    ds = _ds([("x", d(-100), None, 10.0)])
    # churn needs a + 90 + 30 <= observed_end, revenue a + 365 <= observed_end
    churn = build_features(ds, [A, d(1)], labels=CFG, observed_end=d(120))
    assert churn.churned.tolist()[0] == 0
    assert pd.isna(churn.churned.tolist()[1])
    assert churn.revenue_next_12m.isna().all()
    revenue = build_features(ds, [A, d(1)], labels=CFG, observed_end=d(365))
    assert revenue.revenue_next_12m.tolist()[0] == pytest.approx(120.0)
    assert pd.isna(revenue.revenue_next_12m.tolist()[1])


def test_revenue_formula():
    at = datetime(2025, 3, 1)
    ds = _ds(
        [
            ("x", d(-100), None, 100.0),
            ("x", d(100), d(200), 30.0),
            ("x", d(300), d(400), 365.0 / 12),
        ],
        orders=[
            ("x", at - timedelta(microseconds=1), 1000.0),
            ("x", at, 7.0),
            ("x", at + timedelta(days=365), 1000.0),
            ("x", at + timedelta(days=365) - timedelta(microseconds=1), 3.0),
        ],
    )
    expected = 100 * 12 + 30 * 100 * 12 / 365 + (365 / 12) * 65 * 12 / 365 + 7 + 3
    assert _labels(ds).revenue_next_12m["x"] == pytest.approx(expected, rel=1e-12)


def test_revenue_window_follows_revenue_months():
    assert revenue_window_days(LabelConfig(revenue_months=12)) == 365
    assert revenue_window_days(LabelConfig(revenue_months=6)) == 182
    ds = _ds([("x", d(-100), None, 10.0)])
    got = _labels(ds, LabelConfig(revenue_months=6)).revenue_next_12m["x"]
    assert got == pytest.approx(10.0 * 182 * 12 / 365)


def test_observation_end_is_the_day_after_the_latest_observation():
    ds = _ds(
        [("x", date(2025, 1, 1), None, 1.0), ("x", date(2025, 2, 3), date(2030, 1, 1), 1.0)],
        orders=[("x", datetime(2025, 2, 10, 23, 59), 1.0)],
    )
    assert observation_end(ds) == date(2025, 2, 11)


def test_observation_end_needs_dated_rows():
    ds = Dataset.from_frames(
        {
            "accounts": pd.DataFrame({"account_id": [], "created_at": []}),
            "subscriptions": pd.DataFrame(
                {"account_id": [], "start_date": [], "end_date": [], "mrr": []}
            ),
        }
    )
    with pytest.raises(DataError, match="cannot tell when observation ends"):
        observation_end(ds)
