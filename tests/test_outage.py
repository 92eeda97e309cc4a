"""The service through an outage of its score store, on the real PostgreSQL (127.0.0.1:5432).

The app runs in uvicorn (``api_fixtures.uvicorn_server``) over a store in a throwaway
schema, opened from the settings as ``churnrisk serve`` opens it. The store's URL points
at a relay
(``live.Relay``) in front of the server: stopping the relay refuses every new connection
and cuts the pooled ones, as a database server that goes down does (a refused TCP
connection, not a server that still accepts and answers with an error: that is how an
outage, a restart or a fail-over looks from the service). Starting it again is the
database coming back. The URL carries a password (the server trusts loopback and asks
for none, so any password connects), which must never reach an answer or a log line.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from api_fixtures import (
    RUN2_ID,
    STUB_MODELS,
    settings_for,
    small_world,
    uvicorn_server,
    write_runs,
)
from live import Relay, logged_lines
from store_fixtures import create_pg_schema, drop_pg_schema, make_store, schema_url

from churnrisk.api import create_app
from churnrisk.api.schemas import Problem, StatusPublic

PASSWORD = "outage-Pa55word"
PROBLEM = "application/problem+json"
UNREACHABLE = "the score store is not usable (unreachable); the server log says why"
HANG = 5.0
"""Seconds an answer may take before the test calls it hung (a bound, not a benchmark)."""

READ_ROUTES = [
    "/v1/accounts/at-risk",
    "/v1/accounts/at-risk?tier=high&sort=mrr_at_risk",
    "/v1/accounts/a1",
    "/v1/summary",
    "/v1/trend",
    "/v1/model",
    "/v1/metrics?period=2026-03",
    "/v1/export/scores",
    "/v1/export/scores?format=json",
]
ADMIN_ROUTES = ["/v1/keys", "/v1/status"]


@dataclass
class Outage:
    """The served app, the relay in front of its database, and keys."""

    relay: Relay
    client: httpx.Client
    keys: dict[str, str]  # read, admin: used before the outage; fresh: first used during it
    schema: str
    lines: list[str]

    def get(self, path: str, key: str) -> tuple[httpx.Response, float]:
        """GET ``path`` with the key named ``key``; return the answer and its seconds."""
        started = time.perf_counter()
        response = self.client.get(path, headers={"Authorization": f"Bearer {self.keys[key]}"})
        return response, time.perf_counter() - started


@pytest.fixture(name="outage")
def outage_fixture(tmp_path: Path) -> Iterator[Outage]:
    """Serve a store with RUN1 and RUN2 in a throwaway schema, through a relay."""
    world = small_world(tmp_path)
    schema = create_pg_schema()  # skips when no PostgreSQL answers
    try:
        with Relay(("127.0.0.1", 5432)) as relay:
            url = schema_url(schema).replace(
                "postgres@127.0.0.1:5432", f"postgres:{PASSWORD}@127.0.0.1:{relay.port}"
            )
            store = make_store(url)
            write_runs(store)
            keys = {
                "read": store.create_key("reader", "read")[0],
                "admin": store.create_key("admin", "admin")[0],
                "fresh": store.create_key("newcomer", "admin")[0],
            }
            store.close()
            settings = settings_for(tmp_path, world).model_copy(update={"database_url": url})
            app = create_app(settings, models=STUB_MODELS)
            with (
                uvicorn_server(app, log_level="warning") as base,
                logged_lines() as lines,
                httpx.Client(base_url=base, timeout=30) as client,
            ):
                yield Outage(relay, client, keys, schema, lines)
    finally:
        drop_pg_schema(schema)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    Problem.model_validate(body)
    return body


def _all_routes() -> list[tuple[str, str]]:
    return [(path, "read") for path in READ_ROUTES] + [(path, "admin") for path in ADMIN_ROUTES]


def _until(check: Any, seconds: float) -> float:
    """Poll ``check`` until it is true; return the seconds it took (fail after ``seconds``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, "timed out"
        time.sleep(0.02)
    return time.monotonic() - started


def _secrets(outage: Outage) -> list[str]:
    """What no answer to anyone may contain: the password, user, host, port, schema."""
    return [PASSWORD, "postgres", "127.0.0.1", f"{outage.relay.port}", outage.schema]


def test_a_store_outage_is_503_everywhere_and_the_service_heals_by_itself(
    outage: Outage,
) -> None:
    answers: list[httpx.Response] = []
    for path, key in _all_routes():
        response, _ = outage.get(path, key)
        assert response.status_code == 200, (path, response.text)
    assert outage.client.get("/readyz").status_code == 200

    outage.relay.stop()
    # a key never seen before cannot be verified: 503 (not 401), at once
    for path, _ in _all_routes():
        response, seconds = outage.get(path, "fresh")
        assert _problem(response, 503)["detail"] == UNREACHABLE, path
        assert seconds < HANG, path
        answers.append(response)
    # keys verified before the outage (cached for seconds) reach the routes: 503 too,
    # once the answers cached for the current run have aged (a second)
    for path, key in _all_routes():
        if path.startswith("/v1/metrics") or path == "/v1/status":
            continue  # metrics come from the data source; the status is meant for outages
        _until(lambda path=path, key=key: outage.get(path, key)[0].status_code == 503, HANG)
        response, seconds = outage.get(path, key)
        assert _problem(response, 503)["detail"] == UNREACHABLE, path
        assert seconds < HANG, path
        answers.append(response)
    ready = outage.client.get("/readyz")
    body = _problem(ready, 503)
    assert body["detail"] == "not ready: store: unreachable"
    assert (body["checks"]["store"], body["checks"]["models"]) == ("unreachable", "loaded")
    assert outage.client.get("/healthz").json() == {"status": "ok"}
    answers.append(ready)

    outage.relay.start()
    _until(lambda: outage.get("/v1/summary", "read")[0].status_code == 200, 10.0)
    for path, key in _all_routes():
        response, _ = outage.get(path, key)
        assert response.status_code == 200, (path, response.text)
    ready = outage.client.get("/readyz")
    assert ready.json()["status"] == "ready"
    assert ready.json()["current_run"]["run_id"] == RUN2_ID
    answers.append(ready)

    for response in answers:
        for secret in _secrets(outage):
            assert secret not in response.text, (response.url, secret)
    logged = "\n".join(outage.lines)
    assert PASSWORD not in logged
    down = [line for line in outage.lines if line.startswith("the score store is not usable: ")]
    assert len(down) == 1, down  # once per outage, not once per request
    assert "postgres:***@127.0.0.1" in down[0]
    assert "Connection refused" in down[0]
    assert outage.lines.count("the score store is usable again") == 1


def test_admins_see_the_details_readyz_keeps_to_itself(outage: Outage) -> None:
    response, _ = outage.get("/v1/status", "admin")
    status = StatusPublic.model_validate(response.json())
    assert status.store.url == schema_url(outage.schema).replace(
        "postgres@127.0.0.1:5432", f"postgres:***@127.0.0.1:{outage.relay.port}"
    )
    assert (status.store.status, status.store.error) == ("ok", None)
    assert (status.models.tracking_uri, status.models.status) == (None, "loaded")
    assert status.metrics.source is not None
    assert status.metrics.source.endswith("world")
    assert PASSWORD not in response.text
    ready = outage.client.get("/readyz")
    for secret in [*_secrets(outage), status.metrics.source]:
        assert secret not in ready.text
    _problem(outage.get("/v1/status", "read")[0], 403)
