"""The OpenAPI document is the contract: what it declares, the server enforces, and back.

Two tests: a walk over the routes that checks mechanically that each operation documents
the errors it can give (as problem documents), and a bounded, deterministic schemathesis
run with every check on, against a real uvicorn (see tests/schemathesis.toml).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import typing
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api_fixtures import (  # noqa: F401
    STUB_MODELS,
    Api,
    api_fixture,
    seed,
    settings_for,
    small_world,
    uvicorn_server,
)
from store_fixtures import sqlite_url

from churnrisk.api import create_app
from churnrisk.api.deps import AdminKey, WriteKey
from churnrisk.api.routes import (
    accounts,
    activities,
    export,
    health,
    keys,
    review,
    service,
    status,
)
from churnrisk.store import ScoreStore

PROBLEM = "application/problem+json"
CONFIG = Path(__file__).with_name("schemathesis.toml")


def _calls(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _route(path: str, method: str) -> Any:
    routers = (
        accounts.router,
        activities.router,
        export.router,
        health.router,
        keys.router,
        review.router,
        service.router,
        status.router,
    )
    found = [
        route
        for router in routers
        for route in router.routes
        if route.path_format == path and method.upper() in route.methods
    ]
    assert len(found) == 1, f"{method.upper()} {path}: no route in the routers' modules"
    return found[0]


def test_every_error_a_route_can_give_is_documented_as_a_problem(api: Api) -> None:
    """400 where there is input, 401 and 503 behind a key, 403 behind an admin key,
    404 where the path names a resource; every error as a problem document."""
    admin_check = typing.get_args(AdminKey)[1].dependency
    write_check = typing.get_args(WriteKey)[1].dependency
    document = api.get("/openapi.json", key=None).json()
    problem_schema = {"$ref": "#/components/schemas/Problem"}
    operations = [(p, m, op) for p, ops in document["paths"].items() for m, op in ops.items()]
    assert len(operations) == 21
    for path, method, operation in operations:
        route = _route(path, method)
        expected = set()
        if operation.get("parameters") or "requestBody" in operation:
            expected.add("400")
        if operation.get("security"):
            expected |= {"401", "503"}  # a key is checked against the store
        if {admin_check, write_check} & set(_calls(route.dependant)):
            expected.add("403")
        if "{" in path:
            expected.add("404")
        errors = {code for code in operation["responses"] if int(code) >= 400}
        assert expected <= errors, (method, path, sorted(expected - errors))
        for code in errors:
            content = operation["responses"][code]["content"]
            assert content == {PROBLEM: {"schema": problem_schema}}, (method, path, code)


def test_every_documented_method_and_only_those_are_allowed(api: Api) -> None:
    document = api.get("/openapi.json", key=None).json()
    for path, ops in document["paths"].items():
        concrete = path.replace("{account_id}", "a1").replace("{key_id}", "0123456789abcdef")
        allow = api.client.options(concrete).headers["allow"]
        assert set(allow.split(", ")) - {"HEAD", "OPTIONS"} == {m.upper() for m in ops}, path


class _Recorder:
    """An ASGI wrapper that counts the answers by method, path and status."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answers: Counter[tuple[str, str, int]] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def counting(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.answers[(scope["method"], scope["path"], message["status"])] += 1
            await send(message)

        await self.app(scope, receive, counting if scope["type"] == "http" else send)


def _operation(document: dict[str, Any], method: str, path: str) -> str | None:
    for template, ops in document["paths"].items():
        pattern = re.sub(r"\{[^}]+\}", "[^/]+" if "key_id" in template else ".+", template)
        if method.lower() in ops and re.fullmatch(pattern, path):
            return f"{method} {template}"
    return None


def test_schemathesis_finds_no_defect(tmp_path: Path, record_property: Any) -> None:
    """Every check and phase of schemathesis over a store with runs, keys and a world.

    Besides schemathesis's verdict, every documented operation must have been answered
    with a 2xx at least once, so that the keys and the data were real.
    """
    world = small_world(tmp_path)
    store = ScoreStore(sqlite_url(tmp_path))
    store.upgrade()
    read_key, admin_key, *_ = seed(store)
    app = create_app(settings_for(tmp_path, world), store=store, models=STUB_MODELS)
    recorder = _Recorder(app)
    env = {**os.environ, "CHURNRISK_TEST_READ_KEY": read_key, "CHURNRISK_TEST_ADMIN_KEY": admin_key}
    try:
        with uvicorn_server(recorder, log_level="warning") as base:
            run = subprocess.run(
                [
                    *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG)),
                    *("run", f"{base}/openapi.json", "--no-color"),
                ],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
    finally:
        store.close()
    assert run.returncode == 0, run.stdout[-30000:] + run.stderr[-5000:]
    document = app.openapi()
    served = {
        _operation(document, method, path)
        for (method, path, status), _ in recorder.answers.items()
        if 200 <= status < 300
    }
    expected = {f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops}
    assert expected <= served, sorted(expected - served)
    record_property("requests", sum(recorder.answers.values()))  # in a JUnit report
