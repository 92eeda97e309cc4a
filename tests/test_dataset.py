import pandas as pd
import pytest

from churnrisk.dataset import Dataset
from churnrisk.errors import DataError


def _frames():
    return {
        "accounts": pd.DataFrame({"account_id": ["a"], "created_at": ["2026-01-01"]}),
        "subscriptions": pd.DataFrame(
            {"account_id": ["a"], "start_date": ["2026-01-01"], "end_date": [None], "mrr": [10]}
        ),
    }


def test_from_frames_fills_optional_columns_and_tables():
    ds = Dataset.from_frames(_frames())
    acc = ds.frame("accounts")
    assert list(acc.columns)[:3] == ["account_id", "created_at", "name"]
    assert acc["name"].isna().all()
    assert ds.absent == frozenset({"events", "tickets", "nps", "orders", "costs", "activities"})
    assert ds.frame("events").empty
    assert ds.table("subscriptions").mrr.sum().execute() == 10.0


def test_from_frames_converts_offsets_to_utc():
    frames = _frames()
    frames["accounts"] = pd.DataFrame(
        {"account_id": ["a"], "created_at": [pd.Timestamp("2026-01-01 02:00", tz="Europe/Paris")]}
    )
    acc = Dataset.from_frames(frames).frame("accounts")
    assert acc["created_at"].iloc[0] == pd.Timestamp("2026-01-01 01:00")


def test_from_frames_requires_required_tables():
    with pytest.raises(DataError, match="required table 'subscriptions'"):
        Dataset.from_frames({"accounts": _frames()["accounts"]})
