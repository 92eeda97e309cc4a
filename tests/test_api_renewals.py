"""Renewals over the API: the at-risk list's renewal filter and sort, snoozes and contact,
and `GET /v1/renewals`, on SQLite and PostgreSQL.

A third run, RUN3 (current, as of 2026-12-01; tiers high >= 0.25, medium >= 0.10, low):

==  =====  ====  ======  =====  ===============  ===========
id  owner  p     tier    mrr    days_to_renewal  renewal_mrr
==  =====  ====  ======  =====  ===============  ===========
r1  ann    0.60  high    100    20               100
r2  bob    0.40  high    500    5                300
r3  ann    0.12  medium  50     60               50
r4  -      0.05  low     2000   90               2000
r5  bob    0.30  high    80     200              80
r6  ann    0.20  medium  10     -                -
==  =====  ====  ======  =====  ===============  ===========
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from api_fixtures import Api, any_api_fixture, api_fixture  # noqa: F401
from store_fixtures import (  # noqa: F401
    postgres_url_fixture,
    score_row,
    store_fixture,
    store_url_fixture,
    write_sample_run,
)

from churnrisk.api.schemas import AtRiskPagePublic, RenewalsPublic

AS_OF = date(2026, 12, 1)
RUN3 = [
    ("r1", "ann", 0.60, 100.0, 20, 100.0),
    ("r2", "bob", 0.40, 500.0, 5, 300.0),
    ("r3", "ann", 0.12, 50.0, 60, 50.0),
    ("r4", None, 0.05, 2000.0, 90, 2000.0),
    ("r5", "bob", 0.30, 80.0, 200, 80.0),
    ("r6", "ann", 0.20, 10.0, None, None),
]


@pytest.fixture
def api3(any_api: Api) -> Api:
    """The app with RUN3 current."""
    rows = [
        score_row(
            a,
            p,
            owner=owner,
            mrr=mrr,
            days_to_renewal=None if days is None else float(days),
            renewal_date=None if days is None else AS_OF + timedelta(days=days),
            renewal_mrr=renewal,
        )
        for a, owner, p, mrr, days, renewal in RUN3
    ]
    write_sample_run(any_api.store, AS_OF, "2026-12-02T06:00:00", rows)
    any_api.refresh()
    return any_api


def ids(body: dict[str, Any]) -> list[str]:
    return [row["account_id"] for row in body["data"]]


def at_risk(api: Api, **params: Any) -> dict[str, Any]:
    answer = api.get("/v1/accounts/at-risk", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    AtRiskPagePublic.model_validate(body)
    return body


def test_renewing_within_and_the_renewal_sort(api3: Api) -> None:
    assert ids(at_risk(api3, renewing_within=20)) == ["r1", "r2"]  # riskiest first
    assert ids(at_risk(api3, renewing_within=20, sort="renewal")) == ["r2", "r1"]
    assert ids(at_risk(api3, sort="renewal")) == ["r2", "r1", "r3", "r4", "r5", "r6"]
    row = at_risk(api3, renewing_within=5)["data"][0]
    assert (row["renewal_date"], row["days_to_renewal"], row["renewal_mrr"]) == (
        "2026-12-06",
        5,
        300.0,
    )
    seen: list[str] = []
    cursor = None
    while True:
        page = at_risk(api3, sort="renewal", limit=4, **({"cursor": cursor} if cursor else {}))
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["r2", "r1", "r3", "r4", "r5", "r6"]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"renewing_within": -1}, "renewing_within"),
        ({"renewing_within": 3651}, "renewing_within"),
        ({"contact_days": 0}, "contact_days"),
        ({"contact_days": 366}, "contact_days"),
        ({"include_snoozed": "maybe"}, "include_snoozed"),
        ({"sort": "soonest"}, "sort"),
    ],
)
def test_bad_renewal_and_contact_parameters_are_400(
    api: Api, params: dict[str, Any], name: str
) -> None:
    answer = api.get("/v1/accounts/at-risk", params=params)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
    assert [e["parameter"] for e in answer.json()["errors"]] == [name]


def test_a_posted_snooze_hides_the_account_at_once_and_contact_shows(api3: Api) -> None:
    before = at_risk(api3)  # cached now
    assert ids(before)[0] == "r1"
    assert before["data"][0]["last_contact"] is None
    assert before["data"][0]["needs_contact"] is True  # high tier, never contacted
    assert before["data"][ids(before).index("r6")]["needs_contact"] is False  # medium tier
    write_key, _ = api3.store.create_key("cs-tool", "write")
    now = datetime.now(UTC).replace(microsecond=0)
    made = api3.client.post(
        "/v1/accounts/r1/activities",
        json={"kind": "call", "occurred_at": now.isoformat(), "snooze_until": "2099-01-01"},
        headers=api3.auth(write_key),
    )
    assert made.status_code == 201
    after = at_risk(api3)
    assert "r1" not in ids(after)
    assert after["total"] == before["total"] - 1
    shown = at_risk(api3, include_snoozed="true")
    r1 = shown["data"][0]
    assert r1["account_id"] == "r1"
    assert r1["snoozed_until"] == "2099-01-01"
    assert datetime.fromisoformat(r1["last_contact"]) == now
    assert r1["needs_contact"] is False
    # an e-mail 20 days ago: within 30 days, not within 14
    old = (now - timedelta(days=20)).isoformat()
    api3.client.post(
        "/v1/accounts/r2/activities",
        json={"kind": "email", "occurred_at": old},
        headers=api3.auth(write_key),
    )
    r2 = {r["account_id"]: r for r in at_risk(api3)["data"]}["r2"]
    assert r2["needs_contact"] is True
    r2 = {r["account_id"]: r for r in at_risk(api3, contact_days=30)["data"]}["r2"]
    assert r2["needs_contact"] is False


def test_renewals_give_arr_by_tier_and_the_rows_soonest_first(api3: Api) -> None:
    answer = api3.get("/v1/renewals")
    assert answer.status_code == 200
    body = answer.json()
    RenewalsPublic.model_validate(body)
    assert (body["as_of"], body["days"], body["owner"]) == ("2026-12-01", 90, None)
    # within 90 days: r2 (high, 300), r1 (high, 100), r3 (medium, 50), r4 (low, 2000)
    assert body["tiers"] == [
        {"tier": "high", "accounts": 2, "mrr": 400.0, "arr": 4800.0},
        {"tier": "medium", "accounts": 1, "mrr": 50.0, "arr": 600.0},
        {"tier": "low", "accounts": 1, "mrr": 2000.0, "arr": 24000.0},
    ]
    assert body["total"] == {"accounts": 4, "mrr": 2450.0, "arr": 29400.0}
    assert ids(body) == ["r2", "r1", "r3", "r4"]
    assert body["truncated"] is False
    mine = api3.get("/v1/renewals", params={"days": 30, "owner": "ann"}).json()
    assert mine["tiers"] == [
        {"tier": "high", "accounts": 1, "mrr": 100.0, "arr": 1200.0},
        {"tier": "medium", "accounts": 0, "mrr": 0.0, "arr": 0.0},
        {"tier": "low", "accounts": 0, "mrr": 0.0, "arr": 0.0},
    ]
    assert ids(mine) == ["r1"]
    longer = api3.get("/v1/renewals", params={"days": 730}).json()
    assert ids(longer) == ["r2", "r1", "r3", "r4", "r5"]


@pytest.mark.parametrize("params", [{"days": 0}, {"days": 731}, {"days": "x"}, {"owner": ""}])
def test_bad_renewal_windows_are_400(api: Api, params: dict[str, Any]) -> None:
    answer = api.get("/v1/renewals", params=params)
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"


def test_renewals_need_a_key_and_a_run(api: Api, tmp_path: Any) -> None:
    assert api.get("/v1/renewals", key=None).status_code == 401
    # RUN2 is current in the plain fixture: a1 renews in 45 days, no renewal MRR stored
    body = api.get("/v1/renewals").json()
    assert ids(body) == ["a1"]
    assert body["total"] == {"accounts": 1, "mrr": 0.0, "arr": 0.0}


def test_an_activity_written_by_another_worker_shows_in_the_list_at_once(
    api3: Api, tmp_path: Any
) -> None:
    """Two apps on one store stand for two uvicorn workers, each with its own cache."""
    from api_fixtures import NO_MODELS, settings_for
    from fastapi.testclient import TestClient

    from churnrisk.api import create_app

    other = create_app(settings_for(tmp_path / "other"), store=api3.store, models=NO_MODELS)
    with TestClient(other, raise_server_exceptions=False) as worker:
        headers = api3.auth("read")
        first = worker.get("/v1/accounts/at-risk", headers=headers).json()  # cached there
        assert ids(first)[0] == "r1"
        write_key, _ = api3.store.create_key("cs-tool", "write")
        made = api3.client.post(  # written through the first worker
            "/v1/accounts/r1/activities",
            json={"kind": "note", "snooze_until": "2099-01-01"},
            headers=api3.auth(write_key),
        )
        assert made.status_code == 201
        again = worker.get("/v1/accounts/at-risk", headers=headers).json()
        assert "r1" not in ids(again)
        renewals = worker.get("/v1/renewals", headers=headers).json()
        assert renewals["data"][1]["snoozed_until"] == "2099-01-01"  # r1, listed, snoozed


def test_the_renewal_play_and_the_renewal_filter_read_the_same_days(api3: Api) -> None:
    """The default playbook's "Renewal rescue" (high tier, renewal within 60 days) matches
    exactly the accounts the list gives for `tier=high&renewing_within=60`."""
    listed = ids(at_risk(api3, tier="high", renewing_within=60))
    assert listed == ["r1", "r2"]  # r5 renews in 200 days
    rescued = []
    for account in ("r1", "r2", "r3", "r4", "r5", "r6"):
        plays = api3.get(f"/v1/accounts/{account}/plays").json()["data"]
        if any(p["name"] == "Renewal rescue" for p in plays):
            rescued.append(account)
    assert rescued == ["r1", "r2"]
    plays = api3.get("/v1/accounts/r2/plays").json()["data"]
    (rescue,) = [p for p in plays if p["name"] == "Renewal rescue"]
    assert "renews in 5 days (within 60)" in rescue["reasons"]
