"""CS activities and plays over the API: write keys write, read keys read, nothing 500s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_fixtures import Api, any_api_fixture, api_fixture  # noqa: F401
from store_fixtures import postgres_url_fixture, store_fixture, store_url_fixture  # noqa: F401

from churnrisk.playbooks import Playbook

URL = "/v1/accounts/a1/activities"


def _post(api: Api, body: dict[str, object], key: str | None) -> object:
    return api.client.post(URL, json=body, headers=api.auth(key))


def test_a_write_key_records_and_a_read_key_reads(any_api: Api) -> None:
    write_key, _ = any_api.store.create_key("cs-tool", "write")
    when = "2026-11-20T10:30:00Z"
    made = _post(
        any_api,
        {
            "kind": "call",
            "text": "Renewal call\\nagreed a QBR",
            "author": "ann",
            "occurred_at": when,
        },
        write_key,
    )
    assert made.status_code == 201
    first = made.json()
    assert (first["kind"], first["author"], first["source"]) == ("call", "ann", "api")
    assert first["occurred_at"] == "2026-11-20T10:30:00+00:00"
    later = _post(any_api, {"kind": "note", "snooze_until": "2099-01-01"}, "admin")
    assert later.status_code == 201
    got = any_api.get(URL)
    assert got.status_code == 200
    body = got.json()
    assert [a["kind"] for a in body["data"]] == ["note", "call"]  # the note is now: newest
    assert body["last_contact"] == "2026-11-20T10:30:00+00:00"  # a note is no contact
    assert body["snoozed_until"] == "2099-01-01"
    assert body["data"][1] == first


def test_a_read_key_cannot_write(any_api: Api) -> None:
    refused = _post(any_api, {"kind": "call"}, "read")
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "has scope 'read'; this needs a write key" in refused.json()["detail"]
    assert _post(any_api, {"kind": "call"}, None).status_code == 401
    assert any_api.get(URL).json()["data"] == []


def test_bad_activities_are_refused_with_a_reason(api: Api) -> None:
    cases = [
        ({"kind": "fax"}, "kind must be one of call, meeting, email, offer, note, task"),
        ({"kind": "call", "outcome": "won"}, "outcome must be one of saved, lost"),
        ({"kind": "call", "text": "x" * 4001}, "at most 4000 characters"),
        ({"kind": "call", "colour": "red"}, "extra inputs are not permitted"),
        ({"kind": "call", "occurred_at": "yesterday"}, "occurred_at"),
    ]
    for body, reason in cases:
        answer = _post(api, body, "admin")
        assert answer.status_code == 400, body
        assert reason in answer.text, (body, answer.text)
    ahead = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    future = _post(api, {"kind": "call", "occurred_at": ahead}, "admin")
    assert future.status_code == 400
    assert "is in the future; record what has happened" in future.json()["detail"]
    assert api.get(URL).json()["data"] == []


def test_an_account_never_scored_has_no_activities(api: Api) -> None:
    for answer in (
        api.get("/v1/accounts/nobody/activities"),
        api.client.post(
            "/v1/accounts/nobody/activities", json={"kind": "call"}, headers=api.auth("admin")
        ),
        api.get("/v1/accounts/nobody/plays"),
    ):
        assert answer.status_code == 404
        assert "account 'nobody' has never been scored" in answer.json()["detail"]


def test_the_plays_of_an_account_say_why(any_api: Api) -> None:
    any_api.service.playbook = Playbook.model_validate(
        {
            "play": [
                {"name": "Call now", "text": "Call the sponsor.", "when": {"tier": ["high"]}},
                {"name": "Big ones", "text": "Escalate.", "when": {"mrr_min": 1000}},
                {"name": "Top", "text": "Sponsor it.", "when": {"mrr_top_percent": 40}},
            ]
        }
    )
    high = any_api.get("/v1/accounts/a1/plays").json()
    assert high == {
        "account_id": "a1",
        "data": [{"name": "Call now", "text": "Call the sponsor.", "reasons": ["tier is high"]}],
    }
    # the current run's MRR: a4 2,000, a2 500, a1 100, a3 50, a6 10; the top 40% is 2 of 5
    big = any_api.get("/v1/accounts/a4/plays").json()["data"]
    assert [(p["name"], p["reasons"]) for p in big] == [
        ("Big ones", ["MRR 2,000 is at least 1,000"]),
        ("Top", ["MRR 2,000 is in the top 40% of the book (1st of 5)"]),
    ]
    second = any_api.get("/v1/accounts/a2/plays").json()["data"]
    assert [(p["name"], p["reasons"]) for p in second] == [
        ("Call now", ["tier is high"]),
        ("Top", ["MRR 500 is in the top 40% of the book (2nd of 5)"]),
    ]


def test_the_default_playbook_is_served(api: Api) -> None:
    assert len(api.service.playbook.play) == 6
    answer = api.get("/v1/accounts/a1/plays")
    assert answer.status_code == 200
    # a1: high, renews in 45 days, DAU/MAU and tickets raising its risk, MRR 100
    assert [p["name"] for p in answer.json()["data"]] == [
        "Renewal rescue",
        "Re-onboard the users",
        "Clear the support backlog",
    ]
