"""Hand-made runs and a ready app for the API tests (and the dashboard test, if useful).

Two runs of the tiers high >= 0.25, medium >= 0.10, low:

RUN1 as of 2026-10-01: a1 0.40, a2 0.35, a3 0.10, a5 0.20.

RUN2 (current) as of 2026-11-01:

==  =======  =======  =====  =====  ====  ======  =====  ===========  ======  =======
id  name     segment  plan   owner  p     tier    mrr    mrr_at_risk  clv     change
==  =======  =======  =====  =====  ====  ======  =====  ===========  ======  =======
a1  Acme     smb      pro    ann    0.60  high    100    60           900     +0.20
a2  Beta     mid      basic  bob    0.30  high    500    150          9000    -0.05
a3  Gamma    smb      basic  ann    0.12  medium  50     6            2000    +0.02
a4  Delta    ent      pro    -      0.05  low     2000   100          50000   -
a6  -        -        -      -      0.30  high    10     3            100     -
==  =======  =======  =====  =====  ====  ======  =====  ===========  ======  =======

a5 is in RUN1 only (its latest score is not current).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient
from store_fixtures import driver, score_row, sqlite_url, write_sample_run

from churnrisk.api import create_app
from churnrisk.api.state import LoadedModels
from churnrisk.settings import Settings
from churnrisk.store import RunRecord, ScoreStore

RUN1_ID = "1" * 32
RUN2_ID = "2" * 32

NO_MODELS = LoadedModels.unavailable("no champion model in these tests")

CHANGE_A1 = {
    "feature": "dau_mau_30d",
    "meaning": "meaning of dau_mau_30d",
    "before": 0.31,
    "after": 0.08,
    "before_display": "0.31",
    "after_display": "0.08",
    "contribution_change": 0.35,
    "direction": "raised",
    "text": "meaning of dau_mau_30d: 0.31 → 0.08, raised risk",
}


def _row(account_id: str, p: float, mrr: float, clv: float, **fields: Any) -> dict[str, Any]:
    return score_row(
        account_id, p, mrr=mrr, mrr_at_risk=mrr * p, lifetime_clv=clv, revenue_12m=clv / 2, **fields
    )


RUN1_ROWS = [
    _row("a1", 0.40, 100.0, 800.0, name="Acme", segment="smb", plan="pro", owner="ann"),
    _row("a2", 0.35, 500.0, 8000.0, name="Beta", segment="mid", plan="basic", owner="bob"),
    _row("a3", 0.10, 50.0, 1900.0, name="Gamma", segment="smb", plan="basic", owner="ann"),
    _row("a5", 0.20, 30.0, 700.0, name="Epsilon", segment="mid", plan="pro", owner="bob"),
]

RUN2_ROWS = [
    _row(
        "a1",
        0.60,
        100.0,
        900.0,
        name="Acme",
        segment="smb",
        plan="pro",
        owner="ann",
        previous_probability=0.40,
        probability_change=0.20,
        change_drivers=[CHANGE_A1],
        renewal_date=date(2026, 12, 16),
        days_to_renewal=45.0,
        context=[driver("days_to_renewal", 0.3, 45), driver("seats", -0.05, 12)],
        drivers=[
            driver("dau_mau_30d", 0.4, 0.08),
            driver("tickets_90d", 0.1, 7),
            driver("tenure_days", -0.2, 400),
        ],
    ),
    _row(
        "a2",
        0.30,
        500.0,
        9000.0,
        name="Beta",
        segment="mid",
        plan="basic",
        owner="bob",
        previous_probability=0.35,
        probability_change=-0.05,
    ),
    _row(
        "a3",
        0.12,
        50.0,
        2000.0,
        name="Gamma",
        segment="smb",
        plan="basic",
        owner="ann",
        previous_probability=0.10,
        probability_change=0.02,
    ),
    _row("a4", 0.05, 2000.0, 50000.0, name="Delta", segment="ent", plan="pro", owner=None),
    _row("a6", 0.30, 10.0, 100.0, name=None, segment=None, plan=None, owner=None),
]


def write_runs(store: ScoreStore) -> tuple[RunRecord, RunRecord]:
    """Write RUN1 and RUN2 (current)."""
    run1 = write_sample_run(store, "2026-10-01", "2026-10-02T06:00:00", RUN1_ROWS, run_id=RUN1_ID)
    run2 = write_sample_run(
        store,
        "2026-11-01",
        "2026-11-02T06:00:00.123456",
        RUN2_ROWS,
        run_id=RUN2_ID,
        previous_run_id=RUN1_ID,
        churn_version="3",
        clv_version="2",
    )
    return run1, run2


@dataclass
class Api:
    """A test client over an app on a store with RUN1 and RUN2, and two keys."""

    client: TestClient
    store: ScoreStore
    read_key: str
    admin_key: str
    run1: RunRecord
    run2: RunRecord

    def get(self, url: str, key: str | None = "read", **kwargs: Any) -> Any:
        """GET ``url`` with the read key (``key="admin"``, a key text, or None)."""
        return self.client.get(url, headers=self.auth(key), **kwargs)

    def auth(self, key: str | None) -> dict[str, str]:
        """The Authorization header of ``key`` ("read", "admin", a key text or None)."""
        text = {"read": self.read_key, "admin": self.admin_key}.get(key or "", key)
        return {"Authorization": f"Bearer {text}"} if text else {}

    @property
    def service(self) -> Any:
        """The app's ServiceState."""
        return self.client.app.state.service  # type: ignore[attr-defined]

    def refresh(self) -> None:
        """Make the app re-read the current run now (instead of within a second)."""
        self.service.runs.invalidate()


def settings_for(folder: Path, data: Path | None = None) -> Settings:
    """Settings with everything under ``folder`` (no environment leaks in)."""
    return Settings(data_dir=folder, database_url=None, data=data)


@contextmanager
def open_api(
    store: ScoreStore,
    folder: Path,
    *,
    models: LoadedModels = NO_MODELS,
    data: Path | None = None,
) -> Iterator[Api]:
    """Write RUN1 and RUN2 and two keys into ``store``; serve it with a TestClient."""
    read_key, admin_key, run1, run2 = seed(store)
    app = create_app(settings_for(folder, data), store=store, models=models)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, store, read_key, admin_key, run1, run2)


def seed(store: ScoreStore) -> tuple[str, str, RunRecord, RunRecord]:
    """Write RUN1 and RUN2 and a read and an admin key; return the keys and the runs."""
    run1, run2 = write_runs(store)
    read_key, _ = store.create_key("reader", "read")
    admin_key, _ = store.create_key("admin", "admin")
    return read_key, admin_key, run1, run2


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def uvicorn_server(app: Any, *, log_level: str = "info") -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on a free port, in a thread; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, loop="asyncio", http="h11", log_level=log_level
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            time.sleep(0.02)
        assert server.started, "uvicorn did not start within 10 s"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


STUB_MODELS = LoadedModels(
    info={
        "churn_version": "1",
        "clv_version": "1",
        "run_id": "r",
        "trained_as_of": ["2026-01-01", "2026-03-01"],
        "fingerprint": "f",
        "metrics": {"churn.model.pr_auc": 0.5},
    },
    bundle=object(),  # type: ignore[arg-type]
)
"""A champion's information without a model: `/v1/model` and `/readyz` answer 200."""


def small_world(folder: Path) -> Path:
    """Generate a 40-account world of January to April 2026 (seed 1) for `/v1/metrics`."""
    from churnrisk.generate import generate_world

    world = folder / "world"
    generate_world(world, accounts=40, months=4, start=date(2026, 1, 1), seed=1)
    return world


@contextmanager
def world_api(folder: Path) -> Iterator[Api]:
    """The app over a SQLite store with RUN1 and RUN2, a champion, and a small world."""
    world = small_world(folder)
    store = ScoreStore(sqlite_url(folder))
    store.upgrade()
    try:
        with open_api(store, folder, models=STUB_MODELS, data=world) as served:
            yield served
    finally:
        store.close()


@pytest.fixture(name="api")
def api_fixture(tmp_path: Path) -> Iterator[Api]:
    """The app over a SQLite store holding RUN1 and RUN2."""
    store = ScoreStore(sqlite_url(tmp_path))
    store.upgrade()
    try:
        with open_api(store, tmp_path) as served:
            yield served
    finally:
        store.close()


@pytest.fixture(name="any_api")
def any_api_fixture(store: ScoreStore, tmp_path: Path) -> Iterator[Api]:
    """The app over the ``store`` fixture: SQLite and PostgreSQL."""
    with open_api(store, tmp_path) as served:
        yield served
