"""CS activities and the alert delivery log in the score store (SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from store_fixtures import postgres_url_fixture, store_fixture, store_url_fixture  # noqa: F401

from churnrisk.alerts import Delivery
from churnrisk.store import InvalidQueryError, ScoreStore

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_activities_are_listed_newest_first(store: ScoreStore) -> None:
    acts = store.activities
    first = acts.add("A1", "call", "Talked to the admin", author="ana", occurred_at=T0)
    acts.add("A1", "note", "Prepare the QBR", author="ana", occurred_at=T0 + timedelta(days=2))
    acts.add("B2", "email", "Sent the recap", occurred_at=T0 + timedelta(days=1))
    got = acts.for_account("A1")
    assert [(a.kind, a.occurred_at) for a in got] == [
        ("note", T0 + timedelta(days=2)),
        ("call", T0),
    ]
    assert got[1] == first
    assert got[1].to_dict() | {"activity_id": "", "recorded_at": ""} == {
        "activity_id": "",
        "account_id": "A1",
        "occurred_at": "2026-12-01T09:00:00+00:00",
        "kind": "call",
        "text": "Talked to the admin",
        "author": "ana",
        "outcome": None,
        "snooze_until": None,
        "source": "api",
        "recorded_at": "",
    }
    assert [a.kind for a in acts.for_account("A1", before=T0 + timedelta(days=1))] == ["call"]
    assert acts.for_account("A1", limit=1)[0].kind == "note"
    assert acts.for_account("nobody") == []


def test_a_naive_time_is_utc(store: ScoreStore) -> None:
    made = store.activities.add("A1", "call", occurred_at=datetime(2026, 12, 1, 9, 0))
    assert made.occurred_at == T0
    assert store.activities.for_account("A1")[0].occurred_at == T0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "fax"}, "activity kind 'fax' is not one of call, meeting, email, offer"),
        ({"kind": "call", "outcome": "won"}, "activity outcome 'won' is not one of saved"),
        ({"kind": "call", "text": "x" * 4001}, "activity text is 4001 characters; at most 4000"),
        ({"kind": "call", "author": "y" * 201}, "author is longer than 200 characters"),
    ],
)
def test_a_bad_activity_is_refused(store: ScoreStore, kwargs, message) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        store.activities.add("A1", **kwargs)
    assert store.activities.for_account("A1") == []


def test_last_contact_counts_only_touches_of_the_customer(store: ScoreStore) -> None:
    acts = store.activities
    acts.add("A1", "call", occurred_at=T0)
    acts.add("A1", "note", occurred_at=T0 + timedelta(days=3))  # not a contact
    acts.add("B2", "meeting", occurred_at=T0 + timedelta(days=1))
    acts.add("B2", "offer", occurred_at=T0 + timedelta(days=2))
    acts.add("C3", "task", occurred_at=T0)
    assert acts.last_contacts() == {"A1": T0, "B2": T0 + timedelta(days=2)}
    assert acts.last_contacts(before=T0 + timedelta(days=2)) == {
        "A1": T0,
        "B2": T0 + timedelta(days=1),
    }


def test_the_latest_snooze_decides(store: ScoreStore) -> None:
    acts = store.activities
    acts.add("A1", "call", occurred_at=T0, snooze_until=date(2026, 12, 20))
    acts.add("A1", "note", occurred_at=T0 + timedelta(days=1), snooze_until=date(2026, 12, 8))
    acts.add("A1", "note", occurred_at=T0 + timedelta(days=2))  # no snooze: changes nothing
    acts.add("B2", "call", occurred_at=T0, snooze_until=date(2026, 12, 10))
    acts.add("C3", "call", occurred_at=T0, snooze_until=date(2026, 12, 6))  # already over
    assert acts.snoozed(date(2026, 12, 6)) == {"A1": date(2026, 12, 8), "B2": date(2026, 12, 10)}
    assert acts.snoozed(date(2026, 12, 8)) == {"B2": date(2026, 12, 10)}


def test_importing_the_same_history_twice_adds_nothing(store: ScoreStore) -> None:
    history = pd.DataFrame(
        {
            "account_id": ["A1", "A1", "B2"],
            "occurred_at": pd.to_datetime(
                ["2026-10-01 10:00", "2026-10-05 00:00", "2026-11-01 00:00"]
            ),
            "kind": ["call", "email", "meeting"],
            "outcome": [None, "no_response", "saved"],
            "owner": ["ana", None, "bo"],
            "text": ["Kick-off", None, "Renewal agreed"],
        }
    )
    assert store.activities.import_frame(history) == 3
    assert store.activities.import_frame(history) == 0
    more = pd.concat([history, history.iloc[[0]].assign(text="Follow-up")])
    assert store.activities.import_frame(more) == 1
    got = store.activities.for_account("A1")
    assert [(a.kind, a.text, a.author, a.outcome, a.source) for a in got] == [
        ("email", "", None, "no_response", "import"),
        ("call", "Follow-up", "ana", None, "import"),  # same time: the later record first
        ("call", "Kick-off", "ana", None, "import"),
    ]
    assert got[2].occurred_at == datetime(2026, 10, 1, 10, 0, tzinfo=UTC)


def test_an_import_with_an_unknown_kind_adds_nothing(store: ScoreStore) -> None:
    bad = pd.DataFrame(
        {"account_id": ["A1", "A1"], "occurred_at": [T0, T0], "kind": ["call", "pigeon"]}
    )
    with pytest.raises(InvalidQueryError, match="'pigeon'"):
        store.activities.import_frame(bad)
    assert store.activities.for_account("A1") == []


def test_the_delivery_log_keeps_every_attempted_delivery(store: ScoreStore) -> None:
    sent = [
        Delivery("webhook", "https://crm.example/hook", "delivered", 2, "HTTP 200", 4, T0),
        Delivery("email", "bo@x.io", "failed", 1, "x" * 600, 2, T0 + timedelta(seconds=1)),
    ]
    assert store.deliveries.record("run1", [asdict(d) for d in sent]) == 2
    assert store.deliveries.record("run1", []) == 0
    got = store.deliveries.recent()
    assert [(d.channel, d.status, d.attempts, d.alerts, d.run_id) for d in got] == [
        ("email", "failed", 1, 2, "run1"),
        ("webhook", "delivered", 2, 4, "run1"),
    ]
    assert len(got[0].detail) == 500
    assert got[1].to_dict()["at"] == "2026-12-01T09:00:00+00:00"
    assert [d.channel for d in store.deliveries.recent(limit=1)] == ["email"]
