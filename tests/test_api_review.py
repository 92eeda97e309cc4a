"""The review routes: the scorecard, an account's monthly usage and the win-back list.

The book of tests/test_scorecard.py, served: A pays from 2024-01-01 and stops on
2024-03-10, C stops on 2024-02-20, B and D stay. Events, tickets and NPS answers of B
run up to 2024-07-14, so observation ends on 2024-07-15. Three runs (02-01, 03-01 and
04-01, the current one) of the tiers high >= 0.25, medium >= 0.10, low.

Without a champion the label is the default one (horizon 90 days, grace 30): the
windows of 02-01 and 03-01 close (05-31 and 06-29) before 07-15, that of 04-01 (07-30)
does not. Graded by hand:

- 02-01 (A 0.30, B 0.05, C 0.20, D 0.40): A (03-10) and C (02-20) churn in the window.
  Top two: D and A; precision 1/2, recall 1/2, churned MRR caught 100 / (100 + 50).
- 03-01 (A 0.50, B 0.02, D 0.15): A churns. Top two: A and D; 1/2, 1, 1.
- tiers over both: high A, D, A (2 churned of 3); medium C, D (1 of 2); low B, B (0).
- lead time: A was high on 02-01, 38 days before 03-10; C was never high.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from api_fixtures import NO_MODELS, settings_for
from fastapi.testclient import TestClient
from store_fixtures import (  # noqa: F401
    postgres_url_fixture,
    score_row,
    sqlite_url,
    store_fixture,
    store_url_fixture,
    write_sample_run,
)

from churnrisk.api import create_app
from churnrisk.api.schemas import ScorecardPublic, UsagePublic, WinBackPublic
from churnrisk.dataset import Dataset
from churnrisk.errors import ConfigError
from churnrisk.store import ScoreStore
from churnrisk.usage import monthly_usage, monthly_usage_table

PROBLEM = "application/problem+json"

RUNS = {
    "2024-02-01": [("A", 0.30, 100.0), ("B", 0.05, 200.0), ("C", 0.20, 50.0), ("D", 0.40, 10.0)],
    "2024-03-01": [("A", 0.50, 100.0), ("B", 0.02, 200.0), ("D", 0.15, 10.0)],
    "2024-04-01": [("B", 0.03, 200.0), ("D", 0.10, 10.0)],
}


def write_world(folder: Path) -> Path:
    """Write the book as CSV tables; return the folder."""
    world = folder / "book"
    world.mkdir()
    tables = {
        "accounts": {
            "account_id": list("ABCD"),
            "created_at": ["2024-01-01"] * 4,
            "name": ["Acme", "Beta", "Gamma", "Delta"],
            "owner": ["ann", "bob", "ann", "bob"],
        },
        "subscriptions": {
            "account_id": list("ABCD"),
            "start_date": ["2024-01-01"] * 4,
            "end_date": ["2024-03-10", "", "2024-02-20", ""],
            "mrr": [100.0, 200.0, 50.0, 10.0],
        },
        "events": {
            "account_id": ["B", "B", "B", "B", "B", "B", "B", "A"],
            "user_id": ["u1", "u1", "u2", "u2", "u3", "u1", "u1", "x"],
            "timestamp": [
                "2024-01-15T09:00:00Z",
                "2024-02-10T09:00:00Z",
                "2024-02-11T09:00:00Z",
                "2024-02-11T10:00:00Z",
                "2024-03-31T23:59:00Z",
                "2024-04-01T00:00:00Z",  # on the as-of date: not counted
                "2024-07-14T12:00:00Z",
                "2024-03-20T08:00:00Z",  # A uses the product after its churn
            ],
        },
        "tickets": {
            "ticket_id": ["t1", "t2"],
            "account_id": ["B", "B"],
            "created_at": ["2024-02-05T10:00:00Z", "2024-04-01T08:00:00Z"],
        },
        "nps": {
            "account_id": ["B", "B", "B"],
            "responded_at": [
                "2024-03-01T10:00:00Z",
                "2024-03-20T10:00:00Z",
                "2024-04-02T10:00:00Z",
            ],
            "score": [9, 6, 0],
        },
    }
    for name, columns in tables.items():
        pd.DataFrame(columns).to_csv(world / f"{name}.csv", index=False)
    return world


def write_book_runs(store: ScoreStore) -> None:
    for i, (as_of, rows) in enumerate(RUNS.items()):
        write_sample_run(
            store,
            as_of,
            f"2024-07-1{i}T06:00:00",
            [score_row(a, p, mrr=mrr) for a, p, mrr in rows],
        )


@dataclass
class Served:
    client: TestClient
    key: str

    def get(self, url: str) -> Any:
        return self.client.get(url, headers={"X-API-Key": self.key})


def serve(store: ScoreStore, folder: Path, data: Path | None) -> Iterator[Served]:
    key, _ = store.create_key("reader", "read")
    app = create_app(settings_for(folder, data), store=store, models=NO_MODELS)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Served(client, key)


@pytest.fixture(name="book")
def book_fixture(store: ScoreStore, tmp_path: Path) -> Iterator[Served]:
    """The book's runs in SQLite and PostgreSQL, served with the book as data source."""
    write_book_runs(store)
    yield from serve(store, tmp_path, write_world(tmp_path))


def test_scorecard_matches_the_hand_worked_book(book: Served) -> None:
    response = book.get("/v1/scorecard?k=2")
    assert response.status_code == 200
    body = response.json()
    ScorecardPublic.model_validate(body)
    assert (body["as_of"], body["k"], body["graded_runs"], body["open_runs"]) == (
        "2024-04-01",
        2,
        2,
        1,
    )
    assert body["tiers"] == [
        {"tier": "high", "accounts": 3, "churned": 2, "rate": pytest.approx(2 / 3)},
        {"tier": "medium", "accounts": 2, "churned": 1, "rate": 0.5},
        {"tier": "low", "accounts": 2, "churned": 0, "rate": 0.0},
    ]
    first, second = body["runs"]
    assert first == {
        "as_of": "2024-02-01",
        "accounts": 4,
        "churned": 2,
        "precision_at_k": 0.5,
        "recall_at_k": 0.5,
        "mrr_caught": pytest.approx(2 / 3),
    }
    assert (second["precision_at_k"], second["recall_at_k"], second["mrr_caught"]) == (0.5, 1, 1)
    assert body["lead"] == {"churns": 2, "flagged": 1, "median_days": 38.0}
    assert [b["rows"] for b in body["reliability"]] == [2, 1, 1, 1, 1, 1]
    assert [b["observed"] for b in body["reliability"]] == [0, 0, 1, 1, 0, 1]
    assert [b["predicted"] for b in body["reliability"]] == pytest.approx(
        [0.035, 0.15, 0.2, 0.3, 0.4, 0.5]
    )
    # no champion: no drift, and nothing to warn about
    assert (body["drift"], body["drift_threshold"], body["warnings"]) == (None, 0.25, [])


def test_the_scorecards_default_list_is_the_backtests_capacity(book: Served) -> None:
    from churnrisk.config import BacktestConfig

    body = book.get("/v1/scorecard").json()
    assert body["k"] == BacktestConfig().capacity_k == 100
    # a list of 100 holds every account: precision is the churn rate, recall is 1
    assert [(r["precision_at_k"], r["recall_at_k"]) for r in body["runs"]] == [
        (0.5, 1.0),
        (pytest.approx(1 / 3), 1.0),
    ]


def test_usage_counts_the_months_before_the_as_of_date(book: Served) -> None:
    response = book.get("/v1/accounts/B/usage?months=3")
    assert response.status_code == 200
    body = response.json()
    UsagePublic.model_validate(body)
    assert (body["account_id"], body["as_of"]) == ("B", "2024-04-01")
    # the event, ticket and answer on or after 2024-04-01 do not count
    assert body["months"] == [
        {
            "month": "2024-01",
            "events": 1,
            "active_users": 1,
            "tickets": 0,
            "nps": None,
            "partial": False,
        },
        {
            "month": "2024-02",
            "events": 3,
            "active_users": 2,
            "tickets": 1,
            "nps": None,
            "partial": False,
        },
        {
            "month": "2024-03",
            "events": 1,
            "active_users": 1,
            "tickets": 0,
            "nps": 7.5,
            "partial": False,
        },
    ]
    assert len(book.get("/v1/accounts/B/usage").json()["months"]) == 12


def test_winback_lists_the_late_churns_with_their_last_scores(book: Served) -> None:
    response = book.get("/v1/winback?days=90")
    assert response.status_code == 200
    body = response.json()
    WinBackPublic.model_validate(body)
    assert (body["as_of"], body["days"]) == ("2024-04-01", 90)
    got = [
        (
            r["account_id"],
            r["churn_day"],
            r["mrr"],
            r["used_after_end"],
            r["still_using"],
            r["last_probability"],
        )
        for r in body["data"]
    ]
    # A still uses the product (03-20): first; both last scored before their churn
    assert got == [
        ("A", "2024-03-10", 100.0, True, True, 0.5),
        ("C", "2024-02-20", 50.0, False, False, 0.2),
    ]
    assert body["data"][0]["last_drivers"] == ["meaning of dau_mau_30d = 0.08, raises risk"]
    assert body["data"][0]["name"] == "Acme"
    # C churned 41 days before the as-of date
    assert [r["account_id"] for r in book.get("/v1/winback?days=30").json()["data"]] == ["A"]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/scorecard?k=0",
        "/v1/scorecard?k=x",
        "/v1/accounts/B/usage?months=0",
        "/v1/accounts/B/usage?months=61",
        "/v1/winback?days=0",
        "/v1/winback?days=731",
    ],
)
def test_bad_parameters_are_400_problems(book: Served, url: str) -> None:
    response = book.get(url)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM


def test_usage_of_an_account_never_scored_is_404(book: Served) -> None:
    response = book.get("/v1/accounts/Z/usage")
    assert (response.status_code, response.json()["type"]) == (
        404,
        "urn:churnrisk:problem:unknown-account",
    )


def test_without_a_data_source_the_review_answers_503(tmp_path: Path) -> None:
    store = ScoreStore(sqlite_url(tmp_path))
    store.upgrade()
    try:
        write_book_runs(store)  # their source ("test") is no path this server reads
        for served in serve(store, tmp_path, None):
            for url in ("/v1/scorecard", "/v1/accounts/B/usage", "/v1/winback"):
                response = served.get(url)
                assert response.status_code == 503, url
                assert response.json()["type"] == "urn:churnrisk:problem:no-metrics-source"
    finally:
        store.close()


def test_without_a_run_the_review_answers_404(tmp_path: Path) -> None:
    store = ScoreStore(sqlite_url(tmp_path))
    store.upgrade()
    try:
        for served in serve(store, tmp_path, write_world(tmp_path)):
            for url in ("/v1/scorecard", "/v1/accounts/B/usage", "/v1/winback"):
                response = served.get(url)
                assert response.status_code == 404, url
                assert response.json()["type"] == "urn:churnrisk:problem:no-run"
    finally:
        store.close()


# --------------------------------------------------------------------------- usage


@pytest.fixture(name="ds")
def ds_fixture(tmp_path: Path) -> Dataset:
    from churnrisk.validate import load

    return load(write_world(tmp_path)).dataset


def test_a_month_cut_short_by_the_as_of_date_is_partial(ds: Dataset) -> None:
    got = monthly_usage(ds, "B", date(2024, 3, 21), months=2)
    assert got == [
        {
            "month": "2024-02",
            "events": 3,
            "active_users": 2,
            "tickets": 1,
            "nps": None,
            "partial": False,
        },
        # 03-20 10:00 is before 03-21: counted; 03-31 is after: not
        {
            "month": "2024-03",
            "events": 0,
            "active_users": 0,
            "tickets": 0,
            "nps": 7.5,
            "partial": True,
        },
    ]


def test_rows_on_or_after_the_as_of_date_change_nothing(ds: Dataset) -> None:
    before = ds.backend.execute(monthly_usage_table(ds, "B", date(2024, 4, 1), months=4))
    assert before["events"].tolist() == [0, 1, 3, 1]  # December 2023 to March 2024
    later = monthly_usage(ds, "B", date(2024, 4, 2), months=1)
    # the event at 04-01 00:00 and the ticket at 08:00 count from the next day on
    assert (later[0]["events"], later[0]["tickets"], later[0]["nps"]) == (1, 1, None)


def test_usage_refuses_a_month_count_out_of_range(ds: Dataset) -> None:
    with pytest.raises(ConfigError, match="months must be between 1 and 60"):
        monthly_usage(ds, "B", date(2024, 4, 1), months=0)


def test_a_drifted_feature_gives_one_warning() -> None:
    from churnrisk.review import drift_warnings

    drift = pd.DataFrame(
        {"feature": ["seats", "tenure_days"], "psi": [0.31, 0.02], "drifted": [True, False]}
    )
    assert drift_warnings(drift, date(2024, 4, 1)) == [
        "feature seats drifted since training (PSI 0.31 as of 2024-04-01);"
        " retrain when the book has changed"
    ]
    assert drift_warnings(None, date(2024, 4, 1)) == []
