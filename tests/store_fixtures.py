"""Score store fixtures shared by the store, API and dashboard tests.

Use in a test module::

    from store_fixtures import postgres_url_fixture, store_fixture, store_url_fixture  # noqa: F401
    from store_fixtures import write_sample_run, score_row

    def test_something(store):          # runs once on SQLite, once on PostgreSQL
        run = write_sample_run(store, "2026-10-01", "2026-10-02T06:00", [score_row("a1", 0.3)])

``store`` is parametrized over :func:`store_urls` (ids ``sqlite`` and ``postgresql``): a
fresh SQLite file per test, and on PostgreSQL one throwaway schema
``churnrisk_test_<hex>`` per test session (created at first use, dropped ``CASCADE`` at
the end), emptied before each test. Where no PostgreSQL server answers on
127.0.0.1:5432, the ``postgresql`` param is skipped with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from churnrisk.store import SCORE_COLUMNS, RunRecord, ScoreStore

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TIERS = {"high": 0.25, "medium": 0.10}
LOW_TIER = "low"


def store_urls() -> list[Any]:
    """The store backends as pytest params (``@pytest.fixture(params=store_urls())``)."""
    return [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql")]


def sqlite_url(folder: Path) -> str:
    """URL of a SQLite score store file in ``folder``."""
    return f"sqlite:///{folder / 'scores.db'}"


def schema_url(schema: str) -> str:
    """URL of the test PostgreSQL server with ``schema`` first on the search path."""
    return f"{PG_SERVER}?options=-csearch_path%3D{schema}"


def create_pg_schema() -> str:
    """Create a new ``churnrisk_test_<hex>`` schema on the test server; skip if none answers."""
    name = f"churnrisk_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(PG_SERVER, connect_args={"connect_timeout": 5})
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    except sa.exc.OperationalError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not answering: {reason}")
    finally:
        engine.dispose()
    return name


def drop_pg_schema(name: str) -> None:
    """Drop a test schema and everything in it."""
    engine = sa.create_engine(PG_SERVER)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        engine.dispose()


def make_store(url: str) -> ScoreStore:
    """Open the store at ``url`` and upgrade its schema to head."""
    store = ScoreStore(url)
    store.upgrade()
    return store


def empty_store(store: ScoreStore) -> None:
    """Delete every row of every score store table."""
    with store.engine.begin() as conn:
        for table in ("scores", "score_runs", "api_keys", "activities", "alert_deliveries"):
            conn.exec_driver_sql(f"DELETE FROM {table}")


@pytest.fixture(name="postgres_url", scope="session")
def postgres_url_fixture() -> Iterator[str]:
    """URL of a throwaway PostgreSQL schema for the test session, upgraded to head."""
    name = create_pg_schema()
    url = schema_url(name)
    try:
        make_store(url).close()
        yield url
    finally:
        drop_pg_schema(name)


@pytest.fixture(name="store_url", params=store_urls())
def store_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an upgraded, empty score store: a SQLite file or the session's PG schema."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    url: str = request.getfixturevalue("postgres_url")
    with ScoreStore(url) as store:
        empty_store(store)
    return url


@pytest.fixture(name="store")
def store_fixture(store_url: str) -> Iterator[ScoreStore]:
    """An upgraded, empty :class:`ScoreStore` (SQLite and PostgreSQL params)."""
    store = make_store(store_url)
    try:
        yield store
    finally:
        store.close()


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def _as_datetime(value: datetime | str) -> datetime:
    out = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return out.replace(tzinfo=UTC) if out.tzinfo is None else out


def tier_of(probability: float, tiers: Mapping[str, float] = TIERS) -> str:
    """The tier of a probability under ``tiers`` (riskiest first), else ``low``."""
    for name, threshold in tiers.items():
        if probability >= threshold:
            return name
    return LOW_TIER


def driver(feature: str, contribution: float, value: Any = 1.0) -> dict[str, Any]:
    """One driver item as the scoring job writes it."""
    direction = "raises" if contribution > 0 else "lowers"
    return {
        "feature": feature,
        "meaning": f"meaning of {feature}",
        "value": value,
        "display": str(value),
        "contribution": contribution,
        "direction": direction,
        "text": f"meaning of {feature} = {value}, {direction} risk",
    }


def score_row(account_id: str, probability: float, **fields: Any) -> dict[str, Any]:
    """One account's score row with every SCORE_COLUMNS field; ``fields`` override.

    Defaults: name ``"Account <id>"``, segment ``smb``, plan ``pro``, owner ``ana``,
    tier by :data:`TIERS`, mrr 100, mrr_at_risk = mrr * probability, revenue_12m =
    12 * mrr * (1 - probability), lifetime_clv = 3 * revenue_12m, no previous score,
    one driver ``dau_mau_30d`` raising risk and one ``tenure_days`` lowering it, no change
    drivers, no known renewal (no renewal MRR) and no context.
    """
    mrr = float(fields.get("mrr", 100.0))
    revenue = 12 * mrr * (1 - probability)
    row: dict[str, Any] = {
        "account_id": account_id,
        "name": f"Account {account_id}",
        "segment": "smb",
        "plan": "pro",
        "owner": "ana",
        "churn_probability": probability,
        "risk_tier": tier_of(probability),
        "mrr": mrr,
        "mrr_at_risk": mrr * probability,
        "revenue_12m": revenue,
        "lifetime_clv": 3 * revenue,
        "previous_probability": None,
        "probability_change": None,
        "drivers": [driver("dau_mau_30d", 0.4, 0.08), driver("tenure_days", -0.2, 400)],
        "change_drivers": [],
        "renewal_date": None,
        "days_to_renewal": None,
        "renewal_mrr": None,
        "context": [],
    }
    row.update(fields)
    return row


def sample_run(
    as_of: date | str,
    scored_at: datetime | str,
    rows: Sequence[Mapping[str, Any]],
    *,
    run_id: str | None = None,
    previous_run_id: str | None = None,
    churn_version: str = "1",
    clv_version: str = "1",
    source: str = "test",
) -> tuple[RunRecord, pd.DataFrame]:
    """A hand-made run: its record and its scores frame (rows from :func:`score_row`)."""
    run = RunRecord(
        run_id=run_id or uuid.uuid4().hex,
        as_of=_as_date(as_of),
        scored_at=_as_datetime(scored_at),
        churn_version=churn_version,
        clv_version=clv_version,
        model_run_id="mlflow-run",
        accounts=len(rows),
        tiers=dict(TIERS),
        low_tier=LOW_TIER,
        previous_run_id=previous_run_id,
        source=source,
    )
    frame = pd.DataFrame([dict(r) for r in rows], columns=SCORE_COLUMNS)
    return run, frame


def write_sample_run(
    store: ScoreStore,
    as_of: date | str,
    scored_at: datetime | str,
    rows: Sequence[Mapping[str, Any]],
    **kwargs: Any,
) -> RunRecord:
    """Write a hand-made run (see :func:`sample_run`) and return its record."""
    run, frame = sample_run(as_of, scored_at, rows, **kwargs)
    store.write_run(run, frame)
    return run
