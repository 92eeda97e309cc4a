"""My book (the summary of one owner's accounts) and account search, on SQLite and PostgreSQL.

The current run (RUN2): a1 Acme (ann, 0.60, MRR 100), a2 Beta (bob, 0.30, 500),
a3 Gamma (ann, 0.12, 50), a4 Delta (no owner, 0.05, 2000), a6 (no name or owner, 0.30, 10).
"""

from __future__ import annotations

import pytest
from api_fixtures import Api, any_api_fixture  # noqa: F401
from store_fixtures import postgres_url_fixture, store_fixture, store_url_fixture  # noqa: F401


def test_my_book_counts_one_owner_s_accounts(any_api: Api) -> None:
    book = any_api.get("/v1/summary", params={"owner": "ann"}).json()
    assert book["owner"] == "ann"
    assert (book["accounts"], book["mrr"], book["mrr_at_risk"]) == (2, 150.0, pytest.approx(66.0))
    assert [(t["tier"], t["accounts"]) for t in book["tiers"]] == [
        ("high", 1),
        ("medium", 1),
        ("low", 0),
    ]
    assert book["owners"] == ["ann", "bob"]  # the filter values are the whole run's
    everyone = any_api.get("/v1/summary").json()
    assert (everyone["owner"], everyone["accounts"]) == (None, 5)


def test_an_owner_without_accounts_has_an_empty_book(any_api: Api) -> None:
    book = any_api.get("/v1/summary", params={"owner": "zoe"}).json()
    assert (book["accounts"], book["mrr"], book["mrr_at_risk"]) == (0, 0.0, 0.0)
    assert all(t["accounts"] == 0 for t in book["tiers"])


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("a", ["a1", "a2", "a6", "a3", "a4"]),  # riskiest first, ties by id
        ("ACME", ["a1"]),
        ("elt", ["a4"]),
        ("a_", []),  # "_" is a character here, not a wildcard
        ("%", []),
        ("nobody", []),
    ],
)
def test_search_finds_accounts_by_id_or_name(any_api: Api, q: str, found: list[str]) -> None:
    answer = any_api.get("/v1/accounts/search", params={"q": q})
    assert answer.status_code == 200
    body = answer.json()
    assert body["q"] == q
    assert [hit["account_id"] for hit in body["data"]] == found


def test_search_returns_what_the_list_shows(any_api: Api) -> None:
    (hit,) = any_api.get("/v1/accounts/search", params={"q": "beta"}).json()["data"]
    assert hit == {
        "account_id": "a2",
        "name": "Beta",
        "segment": "mid",
        "owner": "bob",
        "risk_tier": "high",
        "churn_probability": 0.3,
        "mrr": 500.0,
    }
    assert (
        len(any_api.get("/v1/accounts/search", params={"q": "a", "limit": 2}).json()["data"]) == 2
    )
    assert any_api.get("/v1/accounts/search").status_code == 400  # q is required
