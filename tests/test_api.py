"""The FastAPI service over a real score store with hand-made runs (see api_fixtures).

Most tests run on a SQLite file; a smoke subset also runs on PostgreSQL (``any_api``).
The model and metrics routes use a real small trained champion and a generated world,
made once for the module.
"""

from __future__ import annotations

import csv
import io
import string
import time
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import pytest
import uvicorn
from api_fixtures import (  # noqa: F401
    CHANGE_A1,
    NO_MODELS,
    RUN1_ID,
    RUN2_ID,
    RUN2_ROWS,
    Api,
    any_api_fixture,
    api_fixture,
    open_api,
    settings_for,
    uvicorn_server,
    world_api,
    write_runs,
)
from cli_invoke import invoke
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from live import logged_lines
from quick_config import QUICK
from store_fixtures import (  # noqa: F401
    driver,
    postgres_url_fixture,
    score_row,
    sqlite_url,
    store_fixture,
    store_url_fixture,
    write_sample_run,
)

from churnrisk.api import create_app
from churnrisk.api.logs import redact
from churnrisk.api.schemas import (
    AccountDetailPublic,
    ApiKeyCreatedPublic,
    ApiKeyListPublic,
    AtRiskPagePublic,
    ModelPublic,
    Problem,
    ReadyPublic,
    StatusPublic,
    SummaryPublic,
    TrendPublic,
)
from churnrisk.api.state import KeyCache, LoadedModels, ResponseCache
from churnrisk.store import ScoreStore

PROBLEM = "application/problem+json"


def ids(response: Any) -> list[str]:
    return [row["account_id"] for row in response.json()["data"]]


def problem(response: Any, status: int) -> dict[str, Any]:
    """Check that ``response`` is a problem document of ``status``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    Problem.model_validate(body)
    assert body["status"] == status
    assert body["detail"]
    assert "Traceback" not in response.text
    return body


# --------------------------------------------------------------------------- open routes


def test_healthz_and_docs_need_no_key(api: Api) -> None:
    assert api.get("/healthz", key=None).json() == {"status": "ok"}
    docs = api.get("/docs", key=None)
    assert docs.status_code == 200
    # the docs pages load their assets from this service, never from a CDN
    assert "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    redoc = api.get("/redoc", key=None)
    assert "/docs-assets/redoc.standalone.js" in redoc.text
    assert "fonts.googleapis" not in redoc.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert api.get(f"/docs-assets/{asset}", key=None).status_code == 200
    schema = api.get("/openapi.json", key=None).json()
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    at_risk = schema["paths"]["/v1/accounts/at-risk"]["get"]
    assert {"bearer": []} in at_risk["security"]
    assert "422" not in at_risk["responses"]
    assert set(at_risk["responses"]["400"]["content"]) == {PROBLEM}
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_readyz_names_what_is_missing(api: Api) -> None:
    body = problem(api.get("/readyz", key=None), 503)
    assert body["detail"] == "not ready: models: no champion model in these tests"
    assert body["checks"]["store"] == "ok"
    assert body["checks"]["models"] == "no champion model in these tests"
    assert body["checks"]["current_run"]["run_id"] == RUN2_ID


def test_admins_see_the_service_status(api: Api, tmp_path: Path) -> None:
    response = api.get("/v1/status", key="admin")
    assert response.headers["cache-control"] == "no-store"
    assert StatusPublic.model_validate(response.json()).model_dump() == {
        "store": {"url": sqlite_url(tmp_path), "status": "ok", "error": None},
        "models": {
            "tracking_uri": None,
            "status": "no champion model in these tests",
            "error": "no champion model in these tests",
        },
        "metrics": {"source": None, "error": None},
    }
    problem(api.get("/v1/status"), 403)
    problem(api.get("/v1/status", key=None), 401)


def test_dashboard_page_and_static_files_are_open(api: Api) -> None:
    page = api.get("/", key=None)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == api.get("/static/index.html", key=None).text
    problem(api.get("/static/no-such-file.js", key=None), 404)


# --------------------------------------------------------------------------- keys


def test_missing_wrong_and_malformed_keys_are_401(api: Api) -> None:
    body = problem(api.get("/v1/summary", key=None), 401)
    assert body["detail"].startswith("missing API key: send `Authorization: Bearer <key>`")
    wrong = api.read_key[:-4] + "AAAA"
    for key in (wrong, "crk_nothex_secret", "not-a-key", "x" * 500):
        response = api.get("/v1/summary", key=key)
        body = problem(response, 401)
        assert body["detail"] == "invalid API key: it is unknown, malformed or revoked"
        assert response.headers["www-authenticate"] == "Bearer"


def test_key_in_either_header_but_never_in_the_query(api: Api) -> None:
    assert api.client.get("/v1/summary", headers={"X-API-Key": api.read_key}).status_code == 200
    assert api.get("/v1/summary").status_code == 200
    for name in ("key", "api_key", "apikey", "token", "access_token"):
        response = api.client.get(f"/v1/summary?{name}={api.read_key}")
        problem(response, 401)


def test_basic_auth_is_not_a_key(api: Api) -> None:
    response = api.client.get("/v1/summary", headers={"Authorization": f"Basic {api.read_key}"})
    assert problem(response, 401)["detail"].startswith("missing API key")


def test_read_key_cannot_manage_keys(api: Api) -> None:
    body = problem(api.get("/v1/keys"), 403)
    assert body["detail"].endswith("has scope 'read'; this needs an admin key")
    problem(api.client.post("/v1/keys", json={"name": "x"}, headers=api.auth("read")), 403)


def test_admin_creates_lists_and_revokes_keys(api: Api) -> None:
    created = api.client.post(
        "/v1/keys", json={"name": "crm-sync", "scope": "read"}, headers=api.auth("admin")
    )
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    new = ApiKeyCreatedPublic.model_validate(created.json())
    assert new.key.startswith(f"crk_{new.key_id}_")
    assert (new.name, new.scope, new.revoked_at) == ("crm-sync", "read", None)
    assert api.get("/v1/summary", key=new.key).status_code == 200

    listed = ApiKeyListPublic.model_validate(api.get("/v1/keys", key="admin").json())
    assert [k.name for k in listed.data] == ["reader", "admin", "crm-sync"]
    assert new.key not in api.get("/v1/keys", key="admin").text

    assert api.client.delete(f"/v1/keys/{new.key_id}", headers=api.auth("admin")).status_code == 204
    # this process forgets its cached verdict at once; other workers within KEY_TTL
    problem(api.get("/v1/summary", key=new.key), 401)
    again = api.client.delete(f"/v1/keys/{new.key_id}", headers=api.auth("admin"))
    assert problem(again, 404)["detail"] == (
        f"no API key {new.key_id!r}: `GET /v1/keys` lists them"
    )
    revoked = api.get("/v1/keys", key="admin").json()["data"][2]
    assert revoked["revoked_at"] is not None


def test_bad_key_bodies_are_400(api: Api) -> None:
    post = api.client.post
    admin = api.auth("admin")
    body = problem(post("/v1/keys", json={"name": "x", "scope": "root"}, headers=admin), 400)
    assert [e["parameter"] for e in body["errors"]] == ["scope"]
    body = problem(post("/v1/keys", json={}, headers=admin), 400)
    assert body["errors"] == [{"parameter": "name", "in": "body", "message": "is required"}]
    as_json = {**admin, "Content-Type": "application/json"}
    body = problem(post("/v1/keys", content=b"{not json", headers=as_json), 400)
    assert body["detail"] == (
        "invalid request: body (is not valid JSON: expecting property name enclosed in"
        " double quotes)"
    )
    assert body["errors"] == [
        {
            "parameter": "body",
            "in": "body",
            "message": "is not valid JSON: expecting property name enclosed in double quotes",
        }
    ]
    body = problem(post("/v1/keys", content=b'["k"]', headers=as_json), 400)
    assert body["errors"] == [
        {
            "parameter": "body",
            "in": "body",
            "message": "must be a JSON object, sent as application/json",
        }
    ]
    body = problem(post("/v1/keys", json={"name": "a\x00b"}, headers=admin), 400)
    assert body["errors"] == [
        {"parameter": "name", "in": "body", "message": "must not contain control characters"}
    ]


def test_key_cache_expires_and_is_bounded() -> None:
    cache = KeyCache(ttl=0.05, max_entries=2)
    cache.store("d1", None)
    assert cache.lookup("d1") is None
    time.sleep(0.06)
    assert cache.lookup("d1") is not None  # MISSING: expired
    cache.store("d1", None)
    cache.store("d2", None)
    cache.store("d3", None)
    assert len(cache._items) == 2


def test_revocation_elsewhere_takes_effect_within_the_key_ttl(api: Api) -> None:
    key, record = api.store.create_key("elsewhere", "read")
    assert api.get("/v1/summary", key=key).status_code == 200
    api.store.revoke_key(record.key_id)  # another worker or the CLI revoked it
    assert api.get("/v1/summary", key=key).status_code == 200  # still cached
    api.service.keys.clear()  # what KEY_TTL seconds do
    problem(api.get("/v1/summary", key=key), 401)


# --------------------------------------------------------------------------- at-risk


def test_at_risk_first_page_shape_and_order(api: Api) -> None:
    response = api.get("/v1/accounts/at-risk")
    assert response.status_code == 200
    page = AtRiskPagePublic.model_validate(response.json())
    assert [r.account_id for r in page.data] == ["a1", "a2", "a6", "a3", "a4"]
    assert page.total == 5
    assert page.next_cursor is None
    assert page.run.run_id == RUN2_ID
    assert page.run.as_of == date(2026, 11, 1)
    assert page.run.churn_version == "3"
    a1 = response.json()["data"][0]
    assert a1 == {
        "account_id": "a1",
        "name": "Acme",
        "segment": "smb",
        "plan": "pro",
        "owner": "ann",
        "churn_probability": 0.6,
        "risk_tier": "high",
        "probability_change": 0.2,
        "mrr": 100.0,
        "mrr_at_risk": 60.0,
        "revenue_12m": 450.0,
        "lifetime_clv": 900.0,
        "renewal_date": "2026-12-16",
        "days_to_renewal": 45,
        "renewal_mrr": None,  # RUN2 was written without it
        # risers only
        "drivers": [driver("dau_mau_30d", 0.4, 0.08), driver("tickets_90d", 0.1, 7)],
        "last_contact": None,
        "snoozed_until": None,
        "needs_contact": True,  # high tier, no activity
    }
    a6 = response.json()["data"][2]
    assert (a6["name"], a6["segment"], a6["probability_change"]) == (None, None, None)


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("probability", ["a1", "a2", "a6", "a3", "a4"]),
        ("mrr_at_risk", ["a2", "a4", "a1", "a3", "a6"]),
        ("clv", ["a4", "a2", "a3", "a1", "a6"]),
        ("change", ["a1", "a3", "a2", "a4", "a6"]),
    ],
)
def test_at_risk_sorts(api: Api, sort: str, expected: list[str]) -> None:
    assert ids(api.get(f"/v1/accounts/at-risk?sort={sort}")) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("tier=high", ["a1", "a2", "a6"]),
        ("tier=medium&tier=low", ["a3", "a4"]),
        ("tier=HIGH&tier=Medium", ["a1", "a2", "a6", "a3"]),
        ("segment=smb", ["a1", "a3"]),
        ("plan=basic", ["a2", "a3"]),
        ("owner=ann", ["a1", "a3"]),
        ("min_probability=0.3", ["a1", "a2", "a6"]),
        ("min_probability=0.31", ["a1"]),
        ("min_mrr=100", ["a1", "a2", "a4"]),
        ("tier=high&segment=mid&min_mrr=500", ["a2"]),
        ("tier=high&tier=urgent", ["a1", "a2", "a6"]),
        ("segment=nobody", []),
        ("tier=%20high", []),
    ],
)
def test_at_risk_filters(api: Api, query: str, expected: list[str]) -> None:
    response = api.get(f"/v1/accounts/at-risk?{query}")
    assert ids(response) == expected
    assert response.json()["total"] == len(expected)


@pytest.mark.parametrize(
    ("query", "notes"),
    [
        (
            "tier=hgih",
            ["no account in the current run has tier 'hgih'; the tiers are high, medium, low"],
        ),
        (
            "segment=nobody",
            ["no account in the current run has segment 'nobody'; the segments are ent, mid, smb"],
        ),
        (
            "plan=gold&tier=low",
            ["no account in the current run has plan 'gold'; the plans are basic, pro"],
        ),
        (
            "owner=zed&segment=SMB",
            [
                "no account in the current run has segment 'SMB'; the segments are ent, mid, smb",
                "no account in the current run has owner 'zed'; the owners are ann, bob",
            ],
        ),
        ("tier=medium&segment=ent", []),  # both are there, just not together
        ("tier=high&min_mrr=1000000", []),
    ],
)
def test_filters_narrow_never_refuse_and_an_empty_page_says_which_value_is_absent(
    api: Api, query: str, notes: list[str]
) -> None:
    response = api.get(f"/v1/accounts/at-risk?{query}")
    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["total"] == 0
    assert response.json()["notes"] == notes


def test_a_note_lists_ten_values_and_points_at_the_summary_for_more(api: Api) -> None:
    rows = [score_row(f"o{i:02d}", 0.5, owner=f"owner{i:02d}") for i in range(12)]
    write_sample_run(api.store, "2026-12-01", "2026-12-02T06:00", rows)
    api.refresh()
    page = api.get("/v1/accounts/at-risk?owner=owner99").json()
    listed = ", ".join(f"owner{i:02d}" for i in range(10))
    assert page["notes"] == [
        "no account in the current run has owner 'owner99'; the owners are"
        f" {listed} and 2 more (`GET /v1/summary` lists them)"
    ]
    assert api.get("/v1/accounts/at-risk?owner=owner11").json()["notes"] == []


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("min_probability=1.5", "min_probability"),
        ("min_probability=-0.1", "min_probability"),
        ("min_probability=nan", "min_probability"),
        ("min_mrr=-1", "min_mrr"),
        ("min_mrr=inf", "min_mrr"),
        ("sort=name", "sort"),
        ("segment=" + "x" * 201, "segment"),
        ("owner=a%00b", "owner"),
        ("tier=high&tier=hi%0Agh", "tier[1]"),
        ("segment=", "segment"),
        ("tier=", "tier[0]"),
        ("cursor=", "cursor"),
        ("cursor=%00", "cursor"),
        ("cursor=abc%3D", "cursor"),
        ("cursor=" + "A" * 1001, "cursor"),
    ],
)
def test_bad_query_values_are_400_naming_the_parameter(
    api: Api, query: str, parameter: str
) -> None:
    body = problem(api.get(f"/v1/accounts/at-risk?{query}"), 400)
    assert [e["parameter"] for e in body["errors"]] == [parameter]
    assert body["errors"][0]["in"] == "query"
    assert parameter.split("[")[0] in body["detail"]


def test_several_bad_values_are_all_named(api: Api) -> None:
    body = problem(api.get("/v1/accounts/at-risk?limit=0&sort=x&min_mrr=-2"), 400)
    assert sorted(e["parameter"] for e in body["errors"]) == ["limit", "min_mrr", "sort"]


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 5, 6])
def test_pagination_walks_every_row_once(api: Api, limit: int) -> None:
    for sort in ("probability", "mrr_at_risk", "clv", "change", "renewal"):
        seen: list[str] = []
        url = f"/v1/accounts/at-risk?sort={sort}&limit={limit}"
        cursor = None
        while True:
            page = api.get(url + (f"&cursor={cursor}" if cursor else "")).json()
            assert page["total"] == 5
            assert len(page["data"]) <= limit
            seen += [r["account_id"] for r in page["data"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids(api.get(f"/v1/accounts/at-risk?sort={sort}"))


BAD_CURSOR = (
    "the cursor is not one this API made for this sort: pass the previous page's"
    " `next_cursor` unchanged, with the same `sort`, or leave `cursor` out to start from the"
    " first page"
)


def test_cursor_of_an_older_run_is_409_and_garbage_is_400(api: Api) -> None:
    cursor = api.get("/v1/accounts/at-risk?limit=2").json()["next_cursor"]
    body = problem(api.get("/v1/accounts/at-risk?limit=2&sort=clv&cursor=" + cursor), 400)
    assert body["type"] == "urn:churnrisk:problem:invalid-cursor"
    assert body["detail"] == BAD_CURSOR
    assert body["errors"] == [
        {
            "parameter": "cursor",
            "in": "query",
            "message": "is not a cursor this API made for this sort",
        }
    ]
    # well formed by the schema (URL-safe base64), but not ours: refused by meaning
    for garbage in ("nonsense", "e30", "eyJydW5faWQiOiAiXHUwMDAwIn0"):
        body = problem(api.get(f"/v1/accounts/at-risk?cursor={garbage}"), 400)
        assert body["detail"] == BAD_CURSOR

    write_sample_run(
        api.store, "2026-12-01", "2026-12-02T06:00", [score_row("a1", 0.5)], run_id="3" * 32
    )
    api.refresh()
    body = problem(api.get("/v1/accounts/at-risk?limit=2&cursor=" + cursor), 409)
    assert body["type"] == "urn:churnrisk:problem:stale-cursor"
    assert body["detail"] == (
        f"the cursor belongs to run {RUN2_ID}, but a newer run, {'3' * 32}, has landed since:"
        " start again from the first page (leave `cursor` out)"
    )


def test_no_run_yet_is_404_everywhere_but_export(tmp_path: Path) -> None:
    store = ScoreStore(sqlite_url(tmp_path))
    store.upgrade()
    key, _ = store.create_key("k", "read")
    app = create_app(settings_for(tmp_path), store=store, models=NO_MODELS)
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(app, raise_server_exceptions=False) as client:
        for url in ("/v1/accounts/at-risk", "/v1/summary", "/v1/accounts/a1"):
            body = problem(client.get(url, headers=headers), 404)
            if url != "/v1/accounts/a1":
                assert body["detail"] == "no scoring run yet: run `churnrisk score DATA`"
        export = client.get("/v1/export/scores", headers=headers)
        assert export.status_code == 200
        assert export.text.splitlines() == [",".join(_export_columns())]
        assert "x-next-updated-since" not in export.headers
    store.close()


# --------------------------------------------------------------------------- caching


def test_answers_are_cached_until_a_new_run_lands(api: Api) -> None:
    first = api.get("/v1/accounts/at-risk?tier=high&tier=medium").content
    calls: list[Any] = []
    original = api.store.at_risk

    def counting(query: Any) -> Any:
        calls.append(query)
        return original(query)

    api.store.at_risk = counting  # type: ignore[method-assign]
    # the same query, tiers in another order and case: served from the cache
    assert api.get("/v1/accounts/at-risk?tier=Medium&tier=high").content == first
    assert calls == []
    api.get("/v1/accounts/at-risk?tier=high")
    assert len(calls) == 1

    write_sample_run(api.store, "2026-12-01", "2026-12-02T06:00", [score_row("a9", 0.9)])
    # within RUN_TTL the old run is still served; after it, the new one
    assert ids(api.get("/v1/accounts/at-risk?tier=high")) == ["a1", "a2", "a6"]
    api.refresh()
    assert ids(api.get("/v1/accounts/at-risk?tier=high")) == ["a9"]
    assert api.get("/v1/summary").json()["accounts"] == 1


def test_response_cache_is_bounded_in_bytes() -> None:
    cache = ResponseCache(max_bytes=10)
    cache.put("a", b"12345")
    cache.put("b", b"12345")
    assert cache.get("a") == b"12345"  # a is now the most recent
    cache.put("c", b"1")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"12345", None, b"1")
    cache.put("huge", b"x" * 11)
    assert cache.get("huge") is None


# --------------------------------------------------------------------------- detail


def test_account_detail(api: Api) -> None:
    response = api.get("/v1/accounts/a1")
    assert response.status_code == 200
    detail = AccountDetailPublic.model_validate(response.json())
    body = response.json()
    assert body["drivers"] == [
        driver("dau_mau_30d", 0.4, 0.08),
        driver("tickets_90d", 0.1, 7),
        driver("tenure_days", -0.2, 400),
    ]
    assert body["change_drivers"] == [CHANGE_A1]
    # context apart from the drivers, both directions, as stored
    assert body["context"] == [driver("days_to_renewal", 0.3, 45), driver("seats", -0.05, 12)]
    assert (body["renewal_date"], body["days_to_renewal"]) == ("2026-12-16", 45)
    assert (detail.churn_probability, detail.previous_probability) == (0.6, 0.4)
    assert detail.probability_change == 0.2
    assert (detail.run_id, detail.churn_version, detail.clv_version) == (RUN2_ID, "3", "2")
    assert detail.as_of == date(2026, 11, 1)
    assert body["previous_as_of"] == "2026-10-01"
    assert body["scored_at"] == "2026-11-02T06:00:00.123456+00:00"
    assert detail.current is True
    assert body["history"] == [
        {
            "run_id": RUN1_ID,
            "as_of": "2026-10-01",
            "scored_at": "2026-10-02T06:00:00+00:00",
            "churn_probability": 0.4,
            "risk_tier": "high",
            "mrr": 100.0,
            "mrr_at_risk": 40.0,
            "lifetime_clv": 800.0,
        },
        {
            "run_id": RUN2_ID,
            "as_of": "2026-11-01",
            "scored_at": "2026-11-02T06:00:00.123456+00:00",
            "churn_probability": 0.6,
            "risk_tier": "high",
            "mrr": 100.0,
            "mrr_at_risk": 60.0,
            "lifetime_clv": 900.0,
        },
    ]


def test_account_not_in_the_current_run_shows_its_last_score(api: Api) -> None:
    body = api.get("/v1/accounts/a5").json()
    assert (body["current"], body["run_id"], body["churn_probability"]) == (False, RUN1_ID, 0.2)
    assert body["previous_as_of"] is None
    assert [h["run_id"] for h in body["history"]] == [RUN1_ID]
    assert body["change_drivers"] == []


def test_unknown_account_is_404_and_odd_ids_are_handled(api: Api) -> None:
    body = problem(api.get("/v1/accounts/zz9"), 404)
    assert body["detail"] == (
        "account 'zz9' has never been scored: check the id, or run `churnrisk score DATA`"
        " if it is new"
    )
    body = problem(api.get("/v1/accounts/a%00"), 400)
    assert body["errors"][0] == {
        "parameter": "account_id",
        "in": "path",
        "message": "must not contain control characters",
    }
    problem(api.get("/v1/accounts/" + "x" * 201), 400)
    problem(api.get("/v1/accounts/with%2Fslash"), 404)


def test_account_ids_with_slashes_and_unicode(api: Api) -> None:
    rows = [score_row("acme/eu", 0.5), score_row("café ☕", 0.2)]
    write_sample_run(api.store, "2026-12-01", "2026-12-02T06:00", rows)
    api.refresh()
    assert api.get("/v1/accounts/acme/eu").json()["account_id"] == "acme/eu"
    assert api.get("/v1/accounts/" + quote("café ☕")).json()["account_id"] == "café ☕"


# --------------------------------------------------------------------------- summary


def test_summary(api: Api) -> None:
    response = api.get("/v1/summary")
    SummaryPublic.model_validate(response.json())
    body = response.json()
    assert body["run"]["run_id"] == RUN2_ID
    assert {k: v for k, v in body.items() if k != "run"} == {
        "accounts": 5,
        "mrr": 2660.0,
        "mrr_at_risk": 319.0,
        "tiers": [
            {"tier": "high", "accounts": 3, "mrr_at_risk": 213.0},
            {"tier": "medium", "accounts": 1, "mrr_at_risk": 6.0},
            {"tier": "low", "accounts": 1, "mrr_at_risk": 100.0},
        ],
        "tier_names": ["high", "medium", "low"],
        "segments": ["ent", "mid", "smb"],
        "plans": ["basic", "pro"],
        "owners": ["ann", "bob"],
        "owner": None,  # every owner's accounts: not one book
    }


def test_trend(api: Api) -> None:
    response = api.get("/v1/trend")
    assert response.status_code == 200
    body = TrendPublic.model_validate(response.json())
    assert [p.run_id for p in body.points] == [RUN1_ID, RUN2_ID]
    assert response.json()["points"] == [
        {
            "as_of": "2026-10-01",
            "run_id": RUN1_ID,
            "scored_at": "2026-10-02T06:00:00+00:00",
            "churn_version": "1",
            "accounts": 4,
            "mrr": 680.0,
            "mrr_at_risk": 226.0,
            "tiers": [
                {"tier": "high", "accounts": 2, "mrr": 600.0, "mrr_at_risk": 215.0},
                {"tier": "medium", "accounts": 2, "mrr": 80.0, "mrr_at_risk": 11.0},
                {"tier": "low", "accounts": 0, "mrr": 0.0, "mrr_at_risk": 0.0},
            ],
        },
        {
            "as_of": "2026-11-01",
            "run_id": RUN2_ID,
            "scored_at": SCORED_AT,
            "churn_version": "3",
            "accounts": 5,
            "mrr": 2660.0,
            "mrr_at_risk": 319.0,
            "tiers": [
                {"tier": "high", "accounts": 3, "mrr": 610.0, "mrr_at_risk": 213.0},
                {"tier": "medium", "accounts": 1, "mrr": 50.0, "mrr_at_risk": 6.0},
                {"tier": "low", "accounts": 1, "mrr": 2000.0, "mrr_at_risk": 100.0},
            ],
        },
    ]
    assert [p["run_id"] for p in api.get("/v1/trend?limit=1").json()["points"]] == [RUN2_ID]

    # a new run shows at once (it is the current run: the cache follows it)
    run3 = write_sample_run(api.store, "2026-12-01", "2026-12-02T06:00:00", [score_row("z", 0.9)])
    api.refresh()
    points = api.get("/v1/trend").json()["points"]
    assert [p["run_id"] for p in points] == [RUN1_ID, RUN2_ID, run3.run_id]
    assert points[-1]["mrr_at_risk"] == 90.0


def test_trend_rejects_bad_limits_and_is_empty_without_runs(api: Api, tmp_path: Path) -> None:
    for limit in ("0", "521", "ten", "1.5"):
        body = problem(api.get(f"/v1/trend?limit={limit}"), 400)
        assert body["errors"][0]["parameter"] == "limit"
    store = ScoreStore(sqlite_url(tmp_path / "empty"))
    store.upgrade()
    key, _ = store.create_key("k", "read")
    app = create_app(settings_for(tmp_path), store=store, models=NO_MODELS)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/trend", headers={"X-API-Key": key})
        assert (response.status_code, response.json()) == (200, {"points": []})
    store.close()


# --------------------------------------------------------------------------- export


def _export_columns() -> list[str]:
    from churnrisk.api.routes.export import CSV_COLUMNS

    return list(CSV_COLUMNS)


SCORED_AT = "2026-11-02T06:00:00.123456+00:00"
CURSOR = "2026-11-02T06:00:00.123456Z"
"""RUN2's scored-at time as the export's cursor: UTC as Z, nothing to URL-encode."""


def test_export_csv(api: Api) -> None:
    response = api.get("/v1/export/scores?format=csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="churnrisk-scores-2026-11-01.csv"'
    )
    assert response.headers["x-next-updated-since"] == CURSOR
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == _export_columns()
    assert [r[0] for r in rows[1:]] == ["a1", "a2", "a3", "a4", "a6"]
    tail = ["2026-11-01", SCORED_AT, RUN2_ID, "3"]
    assert rows[1] == [
        "a1",
        "Acme",
        "smb",
        "pro",
        "ann",
        "high",
        "0.6",
        "0.2",
        "100.0",
        "60.0",
        "450.0",
        "900.0",
        "2026-12-16",
        "45",
        "",  # renewal_mrr: none stored
        "meaning of dau_mau_30d = 0.08, raises risk | meaning of tickets_90d = 7, raises risk",
        *tail,
    ]
    assert rows[5][:8] == ["a6", "", "", "", "", "high", "0.3", ""]
    assert response.text.endswith("\r\n")


def test_export_for_a_spreadsheet_defuses_formulas(api: Api) -> None:
    """``spreadsheet=true``: text that a spreadsheet would run gets a ``'``; numbers don't."""
    rows = [
        score_row(
            "=cmd",
            0.5,
            name='=HYPERLINK("http://x.example","click")',
            segment="+smb",
            plan="-pro",
            owner="@ann",
            probability_change=-0.25,
        ),
        score_row("b1", 0.4, name="Zoë", segment="\tsmb", plan="\rpro", owner="a=b"),
    ]
    write_sample_run(api.store, "2026-12-01", "2026-12-02T06:00:00", rows)
    api.refresh()
    plain = list(csv.reader(io.StringIO(api.get("/v1/export/scores").text)))
    assert plain[1][:8] == [
        "=cmd",
        '=HYPERLINK("http://x.example","click")',
        "+smb",
        "-pro",
        "@ann",
        "high",
        "0.5",
        "-0.25",
    ]
    response = api.get("/v1/export/scores?format=csv&spreadsheet=true")
    assert response.content.startswith(b"\xef\xbb\xbfaccount_id,name,")
    safe = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert safe[0] == _export_columns()
    assert safe[1][:8] == [
        "'=cmd",
        '\'=HYPERLINK("http://x.example","click")',
        "'+smb",
        "'-pro",
        "'@ann",
        "high",
        "0.5",
        "-0.25",
    ]
    assert safe[2][:5] == ["b1", "Zoë", "'\tsmb", "'\rpro", "a=b"]
    assert [r[1:] for r in safe[1:]] != [r[1:] for r in plain[1:]]
    assert [len(r) for r in safe] == [len(r) for r in plain]


def test_export_json_and_the_updated_since_cursor(api: Api) -> None:
    response = api.get("/v1/export/scores?format=json")
    body = orjson.loads(response.content)
    assert response.headers["x-next-updated-since"] == CURSOR
    assert body["run"]["run_id"] == RUN2_ID
    assert (body["updated_since"], body["next_updated_since"]) == (None, CURSOR)
    assert [r["account_id"] for r in body["data"]] == ["a1", "a2", "a3", "a4", "a6"]
    assert body["data"][0]["top_drivers"] == [
        "meaning of dau_mau_30d = 0.08, raises risk",
        "meaning of tickets_90d = 7, raises risk",
    ]
    assert list(body["data"][0]) == _export_columns()

    # the next pull with the cursor as given (no encoding needed): nothing new, same cursor
    again = api.get(f"/v1/export/scores?format=json&updated_since={CURSOR}")
    assert orjson.loads(again.content) == {
        "run": None,
        "updated_since": CURSOR,
        "next_updated_since": CURSOR,
        "data": [],
    }
    assert again.headers["x-next-updated-since"] == CURSOR
    csv_again = api.get(f"/v1/export/scores?updated_since={CURSOR}")
    assert csv_again.text == ",".join(_export_columns()) + "\r\n"
    assert csv_again.headers["x-next-updated-since"] == CURSOR
    # a cursor of the old spelling, an offset, lower-case t and z: RFC 3339 all the same
    for since in (SCORED_AT, "2026-11-02T07:00:00.123456+01:00", "2026-11-02t06:00:00.123456z"):
        again = api.get(f"/v1/export/scores?format=json&updated_since={quote(since)}")
        assert orjson.loads(again.content)["data"] == [], since

    # an older cursor exports the run
    for since in (
        "2026-11-02T06:00:00Z",
        "2026-11-02T07:00:00%2B01:00",
        "2026-11-02T06:00:00-00:00",
    ):
        rows = orjson.loads(api.get(f"/v1/export/scores?format=json&updated_since={since}").content)
        assert len(rows["data"]) == 5, since


NOT_RFC3339 = (
    "is not an RFC 3339 date-time with its offset, such as 2026-11-01T06:00:00Z (the"
    " previous export's X-Next-Updated-Since)"
)


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("yesterday", NOT_RFC3339),
        ("2026-11-02T06:00:00", NOT_RFC3339),  # no offset: whose six o'clock?
        ("2026-11-02", NOT_RFC3339),
        ("2026-11-02T06:00Z", NOT_RFC3339),
        ("2026-02-30T06:00:00Z", NOT_RFC3339),  # no such day
        ("2024-01-01T12:99:00Z", NOT_RFC3339),
        ("2026-11-02T12:00:60Z", NOT_RFC3339),  # a leap second is 23:59:60 UTC only
        ("2026-11-02T06:00:00%2B0100", NOT_RFC3339),
        ("", "is empty: leave it out to export every account"),
        (
            "2026-11-02T07:00:00+01:00",  # an unencoded '+' arrives as a space
            "has a space where its offset's `+` should be: send `+` as %2B, or UTC as Z",
        ),
    ],
)
def test_export_refuses_what_is_not_an_rfc3339_date_time(
    api: Api, since: str, message: str
) -> None:
    body = problem(api.get(f"/v1/export/scores?updated_since={since}"), 400)
    assert body["detail"] == f"invalid updated_since: it {message}"
    assert body["errors"] == [{"parameter": "updated_since", "in": "query", "message": message}]


def test_export_takes_any_rfc3339_instant(api: Api) -> None:
    for since in (
        "2026-12-31T23:59:60Z",  # a leap second
        "0001-01-01T00:00:00%2B23:59",  # before year 1 in UTC: before every run
        "9999-12-31T23:59:59-23:59",  # after 9999 in UTC: after every run
        "0000-02-29T12:00:00Z",
    ):
        assert api.get(f"/v1/export/scores?updated_since={since}").status_code == 200, since
    assert (
        len(api.get("/v1/export/scores?updated_since=0000-01-01T00:00:00Z").text.splitlines()) == 6
    )


def test_export_rejects_unknown_formats(api: Api) -> None:
    body = problem(api.get("/v1/export/scores?format=xml"), 400)
    assert body["errors"][0]["parameter"] == "format"


def test_export_streams_in_batches(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from churnrisk.api.routes import export

    monkeypatch.setattr(export, "BATCH", 2)
    rows = orjson.loads(api.get("/v1/export/scores?format=json").content)["data"]
    assert [r["account_id"] for r in rows] == ["a1", "a2", "a3", "a4", "a6"]
    text = api.get("/v1/export/scores").text
    assert len(text.splitlines()) == 6


# --------------------------------------------------------------------------- errors


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    body = problem(api.get("/v1/nothing"), 404)
    assert body["instance"] == "/v1/nothing"
    assert body["type"] == "about:blank"
    response = api.client.delete("/v1/accounts/at-risk", headers=api.auth("read"))
    problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/keys", "GET, HEAD, OPTIONS, POST"),  # two routes: both methods named
        ("PATCH", "/v1/keys/0123456789abcdef", "DELETE, OPTIONS"),
        ("HEAD", "/v1/keys/0123456789abcdef", "DELETE, OPTIONS"),
        ("POST", "/healthz", "GET, HEAD, OPTIONS"),
        ("DELETE", "/static/app.js", "GET, HEAD, OPTIONS"),
    ],
)
def test_a_405_names_every_method_of_the_path(api: Api, method: str, path: str, allow: str) -> None:
    response = api.client.request(method, path, headers=api.auth("admin"))
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    if method != "HEAD":
        assert problem(response, 405)["detail"] == "method not allowed on this resource: see /docs"
    options = api.client.options(path)  # no key needed: the methods are public
    assert (options.status_code, options.headers["allow"], options.content) == (204, allow, b"")


def test_options_of_an_unknown_path_is_404(api: Api) -> None:
    problem(api.client.options("/v1/nothing"), 404)


@pytest.mark.parametrize(
    ("path", "key", "status"),
    [
        ("/healthz", None, 200),
        ("/readyz", None, 503),  # no champion in these tests
        ("/v1/summary", "read", 200),
        ("/v1/summary", None, 401),
        ("/v1/accounts/a1", "read", 200),
        ("/v1/export/scores", "read", 200),
        ("/v1/keys", "read", 403),
        ("/", None, 200),
        ("/static/app.js", None, 200),
    ],
)
def test_head_answers_wherever_get_does_without_the_body(
    api: Api, path: str, key: str | None, status: int
) -> None:
    get = api.get(path, key=key)
    head = api.client.head(path, headers=api.auth(key))
    assert (get.status_code, head.status_code) == (status, status)
    assert head.content == b""
    for name in ("content-type", "content-length", "www-authenticate", "x-next-updated-since"):
        assert head.headers.get(name) == get.headers.get(name), name


def test_unexpected_errors_are_500_without_details(api: Api) -> None:
    def broken() -> Any:
        raise RuntimeError("secret internals")

    api.store.summary = broken  # type: ignore[method-assign]
    response = api.get("/v1/summary")
    body = problem(response, 500)
    assert body["detail"] == "internal error"
    assert "secret internals" not in response.text


def test_a_store_failing_mid_flight_is_503(api: Api) -> None:
    from churnrisk.store import StoreError

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreError(
            "score store sqlite:///x: could not read the summary: disk I/O error",
            reason="could not read the summary",
        )

    api.store.summary = down  # type: ignore[method-assign]
    api.store.export_rows = down  # type: ignore[method-assign]
    for url in ("/v1/summary", "/v1/export/scores"):
        response = api.get(url)
        body = problem(response, 503)
        assert body["detail"] == (
            "the score store is not usable (could not read the summary); the server log says why"
        )
        assert "sqlite" not in response.text
    # one failed statement is not an outage: the store stays usable
    assert api.service.holder.problem is None


def test_a_store_that_is_not_migrated_answers_503_until_it_is(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    store = ScoreStore(url)
    app = create_app(settings_for(tmp_path), store=store, models=NO_MODELS)
    with TestClient(app, raise_server_exceptions=False) as client:
        body = problem(client.get("/readyz"), 503)
        assert body["checks"]["store"] == "schema missing: run `churnrisk store upgrade`"
        body = problem(client.get("/v1/summary", headers={"X-API-Key": "crk_x_y"}), 503)
        assert body["detail"] == (
            "the score store is not usable (schema missing: run `churnrisk store upgrade`);"
            " the server log says why"
        )
        store.upgrade()
        assert problem(client.get("/readyz"), 503)["checks"]["store"] == "ok"  # models missing
        key, _ = store.create_key("k", "read")
        problem(client.get("/v1/summary", headers={"X-API-Key": key}), 404)  # no run, but usable
    store.close()


def test_an_unreachable_database_is_503_not_500(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    app = create_app(
        settings_for(tmp_path).model_copy(update={"database_url": url}), models=NO_MODELS
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        body = problem(client.get("/readyz"), 503)
        assert body["checks"]["store"] == "unreachable"
        problem(client.get("/v1/accounts/at-risk", headers={"X-API-Key": "k"}), 503)


# --------------------------------------------------------------------------- PostgreSQL too


def test_smoke_on_both_databases(any_api: Api) -> None:
    api = any_api
    assert ids(api.get("/v1/accounts/at-risk?sort=change")) == ["a1", "a3", "a2", "a4", "a6"]
    assert ids(api.get("/v1/accounts/at-risk?tier=high&min_mrr=100")) == ["a1", "a2"]
    page = api.get("/v1/accounts/at-risk?limit=2").json()
    nxt = api.get(f"/v1/accounts/at-risk?limit=2&cursor={page['next_cursor']}")
    assert ids(nxt) == ["a6", "a3"]
    detail = api.get("/v1/accounts/a1").json()
    assert [h["run_id"] for h in detail["history"]] == [RUN1_ID, RUN2_ID]
    assert detail["scored_at"] == SCORED_AT
    assert api.get("/v1/summary").json()["mrr_at_risk"] == 319.0
    export = api.get("/v1/export/scores")
    assert export.headers["x-next-updated-since"] == CURSOR
    assert len(api.get(f"/v1/export/scores?updated_since={CURSOR}").text.splitlines()) == 1
    # text a database cannot hold never reaches it
    problem(api.get("/v1/accounts/a%00b"), 400)
    problem(api.get("/v1/accounts/at-risk?segment=%00"), 400)
    problem(api.get("/v1/accounts/at-risk?cursor=eyJydW5faWQiOiAiXHUwMDAwIn0"), 400)
    created = api.client.post("/v1/keys", json={"name": "pg"}, headers=api.auth("admin"))
    assert api.get("/v1/summary", key=created.json()["key"]).status_code == 200


# --------------------------------------------------------------------------- never a 500


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with world_api(tmp_path_factory.mktemp("fuzz")) as served:
        yield served


PARAMS = [
    "tier",
    "segment",
    "plan",
    "owner",
    "min_probability",
    "min_mrr",
    "sort",
    "limit",
    "cursor",
    "period",
    "format",
    "updated_since",
    "spreadsheet",
]
PATHS = [
    "/v1/accounts/at-risk",
    "/v1/accounts/a1",
    "/v1/summary",
    "/v1/trend",
    "/v1/metrics",
    "/v1/model",
    "/v1/export/scores",
    "/v1/keys",
    "/v1/keys/abc",
    "/healthz",
    "/",
    "/static/app.js",
    "/docs",
]
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "high",
            "0.5",
            "1e309",
            "-0",
            "NaN",
            "2026-02",
            "2026Q1",
            "2026-13",
            "json",
            "csv",
            "2026-02-01T00:00:00Z",
            "eyJ9",
            "smb",
            "",
            "500",
            "501",
            "99999999999999999999",
        ]
    ),
    st.integers().map(str),
    st.floats().map(str),
)
HEADER_TEXT = st.text(alphabet=string.printable.strip("\r\n\x0b\x0c"), max_size=60)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET"] * 8 + ["POST", "DELETE", "PUT", "HEAD"]),
    path=st.one_of(
        st.sampled_from(PATHS),
        st.sampled_from(PATHS[:7]),
        st.lists(st.text(max_size=12), min_size=1, max_size=4).map(
            lambda parts: "/v1/" + "/".join(quote(p, safe="") for p in parts)
        ),
        st.text(max_size=20).map(lambda t: "/v1/accounts/" + quote(t, safe="")),
    ),
    query=st.lists(
        st.tuples(st.one_of(st.sampled_from(PARAMS), st.text(max_size=8)), VALUES), max_size=6
    ),
    auth=st.one_of(
        st.sampled_from(["read", "read", "admin", None]),
        HEADER_TEXT.map(lambda t: "crk_" + t),
        HEADER_TEXT,
    ),
    header=st.sampled_from(["Authorization", "X-API-Key"]),
    extra=st.dictionaries(
        st.sampled_from(["Accept", "Content-Type", "X-Forwarded-For", "Cookie", "If-None-Match"]),
        HEADER_TEXT,
        max_size=3,
    ),
    body=st.one_of(st.none(), st.binary(max_size=40), st.just(b'{"name": "k", "scope": "read"}')),
)
def test_no_request_gets_a_500(
    fuzz_api: Api,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    auth: str | None,
    header: str,
    extra: dict[str, str],
    body: bytes | None,
) -> None:
    headers = dict(extra)
    key = {"read": fuzz_api.read_key, "admin": fuzz_api.admin_key}.get(auth or "", auth)
    if key:
        headers[header] = f"Bearer {key}" if header == "Authorization" and auth else key
    url = path + ("?" + urlencode(query) if query else "")
    response = fuzz_api.client.request(method, url, headers=headers, content=body)
    event(f"{response.status_code}")
    assert response.status_code < 500, (url, response.text)
    if response.status_code >= 400 and method != "HEAD":
        assert response.headers["content-type"] == PROBLEM, (url, response.text)
        detail = response.json()["detail"]
        assert isinstance(detail, str)
        assert detail


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    path=st.sampled_from(
        ["/v1/accounts/at-risk"] * 4 + ["/v1/export/scores", "/v1/metrics", "/v1/summary"]
    ),
    query=st.lists(st.tuples(st.sampled_from(PARAMS), VALUES), min_size=1, max_size=5),
)
def test_no_query_string_gets_a_500(fuzz_api: Api, path: str, query: list[tuple[str, str]]) -> None:
    url = f"{path}?{urlencode(query)}"
    response = fuzz_api.get(url, key="read")
    event(f"{path} {response.status_code}")
    assert response.status_code < 500, (url, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == PROBLEM, (url, response.text)
        assert response.json()["detail"]


# --------------------------------------------------------------------------- keys in logs


def test_keys_never_reach_the_logs(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import httpx2 as httpx

    store = ScoreStore(sqlite_url(tmp_path))
    store.upgrade()
    key, record = store.create_key("k", "read")
    secret = key.split("_", 2)[2]
    app = create_app(settings_for(tmp_path), store=store, models=NO_MODELS)
    try:
        with (
            uvicorn_server(app) as base,
            logged_lines() as lines,
            httpx.Client(base_url=base) as client,
        ):
            assert client.get("/v1/summary", headers={"Authorization": f"Bearer {key}"})
            client.get("/v1/accounts/at-risk", headers={"X-API-Key": key})
            client.get("/v1/accounts/a1", headers={"X-API-Key": key + "x"})
            client.get(f"/v1/summary?key={key}")  # a key in the URL by mistake
            client.get(f"/v1/{key}")
    finally:
        store.close()
    printed = capfd.readouterr()
    logged = "\n".join(lines) + printed.out + printed.err
    assert f"GET /v1/summary?key=crk_{record.key_id}_[redacted]" in logged  # the access log ran
    assert secret not in logged
    assert key not in logged


def test_redact() -> None:
    assert redact("GET /x?key=crk_0123456789abcdef_s3cr-et_x HTTP/1.1") == (
        "GET /x?key=crk_0123456789abcdef_[redacted] HTTP/1.1"
    )
    assert redact("no key here") == "no key here"


# --------------------------------------------------------------------------- model and metrics


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A generated world and a tracking store whose champion was trained on it (slow)."""
    from churnrisk.config import RunConfig
    from churnrisk.generate import generate_world
    from churnrisk.pipeline import train
    from churnrisk.tracking import Tracker, fingerprint, tracking_uri
    from churnrisk.validate import load

    root = tmp_path_factory.mktemp("champion")
    generate_world(root / "world", accounts=300, months=26, start=date(2024, 9, 1), seed=11)
    uri = tracking_uri(root / "mlflow")
    tracker = Tracker(uri)
    ds = load(root / "world").dataset
    train(
        ds,
        RunConfig.model_validate(QUICK),
        tracker=tracker,
        fingerprint=fingerprint(root / "world"),
    )
    return {"root": root, "uri": uri, "world": root / "world", "info": tracker.model_info()}


@pytest.fixture
def served(champion: dict[str, Any], tmp_path: Path) -> Any:
    store = ScoreStore(sqlite_url(tmp_path))
    store.upgrade()
    models = LoadedModels.from_tracker(champion["uri"])
    with open_api(store, tmp_path, models=models, data=champion["world"]) as served:
        yield served
    store.close()


def test_model_route_reports_the_champion(served: Api, champion: dict[str, Any]) -> None:
    response = served.get("/v1/model")
    assert response.status_code == 200
    body = ModelPublic.model_validate(response.json())
    info = champion["info"]
    assert body.churn_version == info["churn_version"] == "1"
    assert body.metrics == info["metrics"]
    assert "churn.model.pr_auc" in body.metrics
    assert [d.isoformat() for d in body.trained_as_of or []] == info["trained_as_of"]
    assert body.current_run is not None
    assert body.current_run.run_id == RUN2_ID
    assert body.current_run_uses_champion is False  # RUN2 was scored with version 3


def test_readyz_when_everything_is_there(served: Api) -> None:
    response = served.get("/readyz", key=None)
    assert response.status_code == 200
    body = ReadyPublic.model_validate(response.json())
    assert (body.status, body.store, body.models, body.metrics) == (
        "ready",
        "ok",
        "loaded",
        "available",
    )
    # an open route: it names no server path (the run's source, the data folder)
    assert body.current_run is not None
    assert "source" not in response.json()["current_run"]
    assert str(served.run2.source) not in response.text


def test_models_without_a_champion_say_so(tmp_path: Path) -> None:
    from churnrisk.tracking import tracking_uri

    models = LoadedModels.from_tracker(tracking_uri(tmp_path))
    assert not models.loaded
    assert models.error is not None
    assert models.error.startswith("no champion model in sqlite:///")


def _promote_a_copy(uri: str) -> tuple[str, str]:
    """Register the champion's models again and move the alias to them: a promotion.

    Returns the new ``(churn, clv)`` versions. The new versions point at the same
    logged models, which is all the service needs to see a different champion.
    """
    from churnrisk.tracking import CHAMPION, CHURN_MODEL, CLV_MODEL, Tracker

    tracker = Tracker(uri)
    client = tracker.client
    new = []
    with tracker.active():  # MLflow resolves a logged model through the global URI
        for name in (CHURN_MODEL, CLV_MODEL):
            old = client.get_model_version_by_alias(name, CHAMPION)
            version = client.create_model_version(
                name, source=old.source, run_id=old.run_id, model_id=old.model_id
            )
            client.set_registered_model_alias(name, CHAMPION, version.version)
            new.append(str(version.version))
    return new[0], new[1]


def _wait_for(check: Any, seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return found


def test_the_service_follows_a_promotion_without_a_restart(
    champion: dict[str, Any], tmp_path: Path
) -> None:
    """A service started before any training becomes ready once a champion exists, and
    shows a newly promoted champion within CHURNRISK_MODEL_CHECK_SECONDS."""
    import shutil

    from churnrisk.tracking import tracking_uri

    registry = tmp_path / "registry"
    registry.mkdir()
    uri = tracking_uri(registry)
    store = ScoreStore(sqlite_url(tmp_path))
    store.upgrade()
    write_runs(store)
    key, _ = store.create_key("reader", "read")
    conf = settings_for(tmp_path).model_copy(
        update={"mlflow_tracking_uri": uri, "model_check_seconds": 0.1}
    )
    app = create_app(conf, store=store)
    headers = {"X-API-Key": key}
    with TestClient(app, raise_server_exceptions=False) as client:
        # no model yet: not ready, /v1/model says why
        body = problem(client.get("/readyz"), 503)
        assert body["checks"]["models"] == "no champion model yet: run `churnrisk train DATA`"
        assert problem(client.get("/v1/model", headers=headers), 503)["type"].endswith(
            "no-champion-model"
        )
        # the models are trained (here: the champion's store copied in): ready, no restart
        shutil.copyfile(Path(champion["uri"].removeprefix("sqlite:///")), registry / "mlflow.db")
        _wait_for(lambda: client.get("/readyz").status_code == 200)
        assert client.get("/v1/model", headers=headers).json()["churn_version"] == "1"
        loaded = app.state.service.models

        # a promotion: the new versions are served, the old state replaced whole
        churn, clv = _promote_a_copy(uri)
        assert (churn, clv) == ("2", "2")
        _wait_for(lambda: app.state.service.models.versions == ("2", "2"))
        model = client.get("/v1/model", headers=headers).json()
        assert (model["churn_version"], model["clv_version"]) == ("2", "2")
        assert model["metrics"] == champion["info"]["metrics"]
        models = app.state.service.models
        assert models is not loaded
        assert models.loaded

        # the registry going away keeps the loaded champion serving
        (registry / "mlflow.db").unlink()
        time.sleep(0.5)
        assert client.get("/readyz").status_code == 200
        assert app.state.service.models is models
    store.close()


def test_a_check_without_a_change_loads_nothing(champion: dict[str, Any]) -> None:
    from churnrisk.api.state import ChampionWatch

    models = LoadedModels.from_tracker(champion["uri"])
    watch = ChampionWatch(champion["uri"], models)
    assert models.versions == ("1", "1")
    assert watch.check() is False
    assert watch.models is models


def test_metrics_route_matches_the_cli_engine(served: Api, champion: dict[str, Any]) -> None:
    from churnrisk.metrics import compute_metrics, last_complete_month, parse_period
    from churnrisk.validate import load

    ds = load(champion["world"]).dataset
    default = served.get("/v1/metrics")
    assert default.status_code == 200
    expected = compute_metrics(ds, last_complete_month(ds))
    assert default.json() == orjson.loads(orjson.dumps(expected))

    response = served.get("/v1/metrics?period=2025Q3&segment=Mid-Market")
    assert response.status_code == 200
    want = compute_metrics(ds, parse_period("2025Q3"), segment="Mid-Market")
    assert response.json() == orjson.loads(orjson.dumps(want))
    assert response.json()["period"] == "2025Q3"


def test_scorecard_route_grades_with_the_champion_and_measures_its_drift(
    served: Api, champion: dict[str, Any]
) -> None:
    from churnrisk.review import drift_warnings, scorecard_of
    from churnrisk.validate import load

    bundle = served.service.models.bundle
    done = scorecard_of(load(champion["world"]).dataset, served.store, bundle)
    assert done.drift is not None
    assert len(done.drift) > 0
    body = served.get("/v1/scorecard").json()
    assert body["k"] == bundle.config.backtest.capacity_k
    assert body["as_of"] == "2026-11-01"
    assert body["drift"] == orjson.loads(orjson.dumps(done.drift.to_dict("records")))
    assert body["warnings"] == drift_warnings(done.drift, done.latest.as_of)
    assert body["runs"] == orjson.loads(orjson.dumps(done.card.to_dict()["runs"]))


@pytest.mark.parametrize(
    "period", ["2026-13", "2026-1", "%202026-10%20", "2026-10%0A", "2026Q5", "x"]
)
def test_metrics_period_is_held_to_its_pattern(served: Api, period: str) -> None:
    body = problem(served.get(f"/v1/metrics?period={period}"), 400)
    assert body["errors"] == [
        {
            "parameter": "period",
            "in": "query",
            "message": "is not a month (2026-10) or a quarter (2026Q4)",
        }
    ]


def test_metrics_period_out_of_the_calendar_is_400(served: Api) -> None:
    body = problem(served.get("/v1/metrics?period=0000-01"), 400)
    assert body["detail"] == (
        "period '0000-01' is out of range: periods run from 0001-01 to 9999-11 (9999Q3)"
    )


def test_metrics_of_an_uncovered_period_are_400(served: Api) -> None:
    # the world runs from 2024-09-01 for 26 months: the last day observed is 2026-10-31
    for period, why in (("2026Q4", "runs to 2026-12-31, after"), ("2030-01", "starts after")):
        body = problem(served.get(f"/v1/metrics?period={period}"), 400)
        assert body["detail"] == (
            f"period {period} {why} the data ends: the last day observed is 2026-10-31, and"
            " days nobody observed would count as churn; ask for 2026-10 or an earlier period"
        )
        assert body["errors"] == [{"parameter": "period", "in": "query", "message": body["detail"]}]


def test_metrics_of_a_segment_without_accounts_are_empty_and_say_so(served: Api) -> None:
    body = served.get("/v1/metrics?segment=nobody").json()
    assert (body["customers_start"], body["mrr_end"]) == (0, 0)
    assert body["notes"]["segment"].startswith("no account has segment 'nobody'; the accounts")
    problem(served.get("/v1/metrics?segment="), 400)


def test_metrics_without_a_data_source_is_503(api: Api) -> None:
    # the current run was scored from "test", no folder this server can read
    body = problem(api.get("/v1/metrics"), 503)
    assert body["detail"] == (
        "the current run's data source cannot be read on this server: start the service"
        " with `churnrisk serve --data PATH`"
    )
    ready = api.get("/readyz", key=None).json()  # 503: these tests load no models
    assert ready["checks"]["metrics"] == f"unavailable: {body['detail']}"


def test_metrics_default_to_the_data_the_current_run_was_scored_from(
    champion: dict[str, Any], tmp_path: Path
) -> None:
    """Without --data, /v1/metrics reads the current run's recorded source (issue 13.5)."""
    from churnrisk.metrics import period_metrics
    from churnrisk.validate import load

    world = str(champion["world"])
    store = ScoreStore(sqlite_url(tmp_path))
    store.upgrade()
    try:
        key, _ = store.create_key("reader", "read")
        app = create_app(settings_for(tmp_path), store=store, models=NO_MODELS)
        with TestClient(app, raise_server_exceptions=False) as client:
            auth = {"Authorization": f"Bearer {key}"}
            before = problem(client.get("/v1/metrics", headers=auth), 503)
            assert before["detail"].startswith("no data source: start the service with")
            write_sample_run(store, "2026-11-01", "2026-11-02T06:00:00", RUN2_ROWS, source=world)
            client.app.state.service.runs.invalidate()  # type: ignore[attr-defined]
            response = client.get("/v1/metrics?period=2026-09", headers=auth)
            assert response.status_code == 200
            ds = load(champion["world"]).dataset
            expected = period_metrics(ds, "2026-09")
            assert response.json() == orjson.loads(orjson.dumps(expected))
            ready = client.get("/readyz")  # 503: no models in this test
            assert ready.json()["checks"]["metrics"] == "available"
            assert world not in ready.text
    finally:
        store.close()


# --------------------------------------------------------------------------- single flight


def test_single_flight_runs_a_call_once_for_concurrent_callers() -> None:
    import asyncio

    from churnrisk.api.state import SingleFlight

    calls: list[int] = []

    def slow(value: int) -> int:
        calls.append(value)
        time.sleep(0.05)
        if value < 0:
            raise ValueError("negative")
        return value * 2

    async def main() -> tuple[list[Any], list[Any]]:
        flight = SingleFlight(threads=2)
        same = await asyncio.gather(*(flight.run("k", slow, 21) for _ in range(5)))
        failed = await asyncio.gather(
            *(flight.run("bad", slow, -1) for _ in range(3)), return_exceptions=True
        )
        return same, failed

    same, failed = asyncio.run(main())
    assert same == [42] * 5
    assert [type(e) for e in failed] == [ValueError] * 3
    assert calls == [21, -1]


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from churnrisk.settings import get_settings

    monkeypatch.setenv("CHURNRISK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CHURNRISK_DATABASE_URL", raising=False)
    monkeypatch.setenv("CHURNRISK_DATA", "")  # so that teardown removes what serve sets
    monkeypatch.delenv("CHURNRISK_DATA")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_cli_store_upgrade_and_api_keys(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = cli_env / "data" / "scores.db"
    assert invoke(["store", "upgrade"]) == 0
    out = capsys.readouterr().out
    assert out == f"score store sqlite:///{db} is at schema revision 0005\n"

    assert invoke(["apikey", "list"]) == 0
    assert "no API keys yet" in capsys.readouterr().out

    assert invoke(["apikey", "create", "--name", "crm-sync"]) == 0
    printed = capsys.readouterr()
    key = printed.out.strip()
    assert key.startswith("crk_")
    key_id = key.split("_")[1]
    assert printed.err.strip() == (
        f"created read key {key_id} (crm-sync); copy it now: it cannot be shown again"
    )
    with ScoreStore(f"sqlite:///{db}") as store:
        verified = store.verify_key(key)
        assert verified is not None
        assert (verified.name, verified.scope) == ("crm-sync", "read")

    assert invoke(["apikey", "create", "--name", "ops", "--scope", "admin"]) == 0
    capsys.readouterr()
    assert invoke(["apikey", "list"]) == 0
    listing = capsys.readouterr().out
    assert key_id in listing
    assert "2 API key(s)" in listing
    assert key not in listing

    assert invoke(["apikey", "revoke", key_id]) == 0
    assert capsys.readouterr().out == (
        f"revoked API key {key_id}; services stop accepting it within five seconds\n"
    )
    assert invoke(["apikey", "revoke", key_id]) == 1
    assert f"no active API key '{key_id}'" in capsys.readouterr().err
    assert invoke(["apikey", "create", "--name", "x", "--scope", "root"]) == 2


def test_cli_serve_migrates_and_runs_uvicorn(
    cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    data = cli_env / "world"
    data.mkdir()
    args = ["serve", "--host", "0.0.0.0", "--port", 8123, "--workers", 2, "--data", data]
    assert invoke(args) == 0
    out = capsys.readouterr().out.splitlines()
    db = cli_env / "data" / "scores.db"
    assert out == [
        f"serving churnrisk at http://127.0.0.1:8123 with 2 worker(s); scores from"
        f" sqlite:///{db}; metrics from {data}",
        "dashboard: http://127.0.0.1:8123/  API docs: http://127.0.0.1:8123/docs  (Ctrl+C stops)",
    ]
    assert ScoreStore(f"sqlite:///{db}").revision() == "0005"
    assert os.environ["CHURNRISK_DATA"] == str(data)
    assert calls == [
        (
            "churnrisk.api.app:app_from_env",
            {
                "factory": True,
                "host": "0.0.0.0",
                "port": 8123,
                "workers": 2,
                "loop": "uvloop",
                "http": "httptools",
                "access_log": True,
                "server_header": False,
            },
        )
    ]
    assert invoke(["serve", "--data", cli_env / "missing"]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_app_from_env_reads_the_settings(cli_env: Path) -> None:
    from churnrisk.api import app_from_env

    app = app_from_env()
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/readyz")
        assert str(cli_env) not in response.text  # open to anyone: no paths
        body = problem(response, 503)
        assert body["checks"]["store"] == "schema missing: run `churnrisk store upgrade`"
        assert body["checks"]["models"] == "no champion model yet: run `churnrisk train DATA`"
        assert body["checks"]["metrics"] == (
            "unavailable: no data source: start the service with `churnrisk serve --data"
            " PATH`, or score a run, whose data source is then used"
        )
