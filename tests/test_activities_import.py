"""A data set's CS history enters the score store point in time, once (jobs.import_activities).

Three activities of account A: 2024-02-29 23:59 (before the as-of date 2024-03-01),
2024-03-01 00:00 (on it: not yet known) and 2024-03-05 (after it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
from store_fixtures import postgres_url_fixture, store_fixture, store_url_fixture  # noqa: F401

from churnrisk.jobs.scoring import import_activities
from churnrisk.store import ScoreStore
from churnrisk.validate import load


def _world(folder: Path) -> Path:
    frames = {
        "accounts": {"account_id": ["A"], "created_at": ["2024-01-01"]},
        "subscriptions": {
            "account_id": ["A"],
            "start_date": ["2024-01-01"],
            "end_date": [""],
            "mrr": [10.0],
        },
        "activities": {
            "account_id": ["A", "A", "A"],
            "occurred_at": ["2024-02-29T23:59:00Z", "2024-03-01T00:00:00Z", "2024-03-05T10:00:00Z"],
            "kind": ["call", "email", "meeting"],
            "outcome": ["saved", "", ""],
            "owner": ["ann", "ann", ""],
            "text": ["renewal talk", "", "QBR"],
        },
    }
    for name, columns in frames.items():
        pd.DataFrame(columns).to_csv(folder / f"{name}.csv", index=False)
    return folder


def test_only_the_activities_before_the_as_of_date_are_imported_once(
    store: ScoreStore, tmp_path: Path
) -> None:
    ds = load(_world(tmp_path)).dataset
    assert import_activities(ds, store, date(2024, 3, 1)) == 1
    assert import_activities(ds, store, date(2024, 3, 1)) == 0  # idempotent
    (call,) = store.activities.for_account("A")
    assert (call.kind, call.outcome, call.author, call.text, call.source) == (
        "call",
        "saved",
        "ann",
        "renewal talk",
        "import",
    )
    assert call.occurred_at == datetime(2024, 2, 29, 23, 59, tzinfo=UTC)
    # a later run knows the two others; the first stays as it was
    assert import_activities(ds, store, date(2024, 3, 6)) == 2
    kinds = [a.kind for a in store.activities.for_account("A")]
    assert kinds == ["meeting", "email", "call"]
