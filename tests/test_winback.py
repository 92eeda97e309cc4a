"""Win-back: recently churned accounts, marked when they kept using the product.

As of 2024-04-01, window of 90 days ([2024-01-02, 2024-04-01)), recent use = 14 days:

- A paid 100 until 2024-03-10, then used the product on 03-12 and 03-25 (two users):
  still using.
- B paid 40, then 50 from 01-15, until 02-01; one event on 02-05: used, not lately.
- C left on 02-10 but came back on 03-01: paying, not listed.
- D's end date 05-01 lies after the as-of date: it still pays, not listed.
- E left in 2023, before the window: not listed.
- F paid 70 until 03-20 and never came back; its event of 04-05 is after the as-of date.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from spark_fixtures import spark_fixture  # noqa: F401

from churnrisk.dataset import Dataset
from churnrisk.errors import ConfigError
from churnrisk.winback import WINBACK_COLUMNS, winback

AS_OF = date(2024, 4, 1)


def _frames() -> dict[str, pd.DataFrame]:
    d = date
    accounts = pd.DataFrame(
        {
            "account_id": list("ABCDEF"),
            "created_at": [pd.Timestamp("2023-05-01")] * 6,
            "name": ["Acme", "Beta", "Cee", "Dee", "Eee", "Fox"],
            "segment": ["SMB"] * 6,
            "owner": ["ana", "bo", "bo", "bo", "ana", "ana"],
        }
    )
    subscriptions = pd.DataFrame(
        [
            ("A", d(2024, 1, 1), d(2024, 3, 10), 100.0),
            ("B", d(2024, 1, 1), d(2024, 1, 15), 40.0),
            ("B", d(2024, 1, 15), d(2024, 2, 1), 50.0),
            ("C", d(2024, 1, 1), d(2024, 2, 10), 30.0),
            ("C", d(2024, 3, 1), None, 30.0),
            ("D", d(2024, 1, 1), d(2024, 5, 1), 20.0),
            ("E", d(2023, 6, 1), d(2023, 12, 1), 10.0),
            ("F", d(2024, 1, 1), d(2024, 3, 20), 70.0),
        ],
        columns=["account_id", "start_date", "end_date", "mrr"],
    )
    events = pd.DataFrame(
        [
            ("A", "u1", "2024-03-01 10:00"),  # before the churn: not counted
            ("A", "u1", "2024-03-12 09:00"),
            ("A", "u1", "2024-03-25 09:00"),
            ("A", "u2", "2024-03-25 17:00"),
            ("B", "u9", "2024-02-05 12:00"),
            ("E", "u5", "2024-03-30 12:00"),  # churned before the window
            ("F", "u7", "2024-04-05 12:00"),  # after the as-of date
        ],
        columns=["account_id", "user_id", "timestamp"],
    )
    events["timestamp"] = pd.to_datetime(events["timestamp"])
    return {"accounts": accounts, "subscriptions": subscriptions, "events": events}


def test_winback_hand_worked() -> None:
    got = winback(Dataset.from_frames(_frames()), AS_OF)
    assert list(got.columns) == list(WINBACK_COLUMNS)
    rows = got[
        [
            "account_id",
            "churn_day",
            "days_since_churn",
            "last_mrr",
            "events_after_end",
            "active_days_after_end",
            "users_after_end",
            "last_used",
            "still_using",
        ]
    ].to_dict("records")
    assert [tuple(r.values()) for r in rows] == [
        ("A", date(2024, 3, 10), 22, 100.0, 3, 2, 2, date(2024, 3, 25), True),
        ("F", date(2024, 3, 20), 12, 70.0, 0, 0, 0, None, False),
        ("B", date(2024, 2, 1), 60, 50.0, 1, 1, 1, date(2024, 2, 5), False),
    ]
    assert got["name"].tolist() == ["Acme", "Fox", "Beta"]


def test_winback_reads_nothing_at_or_after_the_as_of_date() -> None:
    frames = _frames()
    cut = {
        "accounts": frames["accounts"],
        "subscriptions": frames["subscriptions"]
        .loc[lambda s: s["start_date"] < AS_OF]
        .assign(end_date=lambda s: s["end_date"].where(s["end_date"] < AS_OF, None)),
        "events": frames["events"].loc[lambda e: e["timestamp"] < pd.Timestamp(AS_OF)],
    }
    pd.testing.assert_frame_equal(
        winback(Dataset.from_frames(frames), AS_OF), winback(Dataset.from_frames(cut), AS_OF)
    )


def test_winback_without_events_lists_the_churned_with_no_usage() -> None:
    frames = _frames()
    del frames["events"]
    got = winback(Dataset.from_frames(frames), AS_OF)
    assert got["account_id"].tolist() == ["A", "F", "B"]
    assert got["events_after_end"].tolist() == [0, 0, 0]
    assert not got["still_using"].any()


def test_a_shorter_window_and_recent_span() -> None:
    got = winback(Dataset.from_frames(_frames()), AS_OF, days=30, recent_days=3)
    # B left 60 days ago; A's last use, 7 days ago, is no longer recent
    assert got["account_id"].tolist() == ["A", "F"]
    assert got["still_using"].tolist() == [False, False]
    with pytest.raises(ConfigError, match="days >= 1"):
        winback(Dataset.from_frames(_frames()), AS_OF, days=0)


def test_winback_is_the_same_on_spark(spark, tmp_path) -> None:
    pytest.importorskip("pyspark")
    from churnrisk.spark import load_spark

    frames = _frames()
    for name, frame in frames.items():
        frame.to_parquet(tmp_path / f"{name}.parquet")
    on_spark = winback(load_spark(tmp_path, spark), AS_OF)
    pd.testing.assert_frame_equal(on_spark, winback(Dataset.from_frames(frames), AS_OF))
