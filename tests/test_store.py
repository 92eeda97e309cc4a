"""The score store on SQLite and PostgreSQL: schema, runs, the at-risk list, export, keys.

Every test taking ``store`` runs twice, on a SQLite file and on a throwaway schema of the
PostgreSQL server at 127.0.0.1:5432 (skipped, with the reason, where none answers).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_fixtures import (  # noqa: F401
    create_pg_schema,
    driver,
    drop_pg_schema,
    make_store,
    postgres_url_fixture,
    sample_run,
    schema_url,
    score_row,
    sqlite_url,
    store_fixture,
    store_url_fixture,
    store_urls,
    write_sample_run,
)

from churnrisk.errors import ConfigError, DataError
from churnrisk.store import (
    SCORE_COLUMNS,
    AtRiskQuery,
    InvalidCursorError,
    InvalidQueryError,
    NoRunError,
    RunRecord,
    ScoreStore,
    StaleCursorError,
    StoreError,
    StoreUnreachableError,
)
from churnrisk.store import store as store_module
from churnrisk.store.database import Database
from churnrisk.store.keys import KeyStore
from churnrisk.store.reads import ScoreReader
from churnrisk.store.runs import RunWriter
from churnrisk.store.schema import HEAD_REVISION, VERSION_TABLE, metadata, scores
from churnrisk.store.store import at_risk_select

ALL_COLUMNS = ["run_id", *SCORE_COLUMNS]
T0 = datetime(2026, 10, 2, 6, 0, tzinfo=UTC)


def ids(page_rows: list[dict[str, Any]]) -> list[str]:
    return [r["account_id"] for r in page_rows]


def count_rows(store: ScoreStore, table: str, run_id: str | None = None) -> int:
    sql = f"SELECT count(*) FROM {table}" + (" WHERE run_id = :r" if run_id else "")
    with store.engine.connect() as conn:
        return int(conn.execute(sa.text(sql), {"r": run_id}).scalar_one())


# ---------------------------------------------------------------- schema and connection


@pytest.fixture(params=store_urls())
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a database with no score store schema (SQLite file in a missing folder)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "not" / "yet")
        return
    name = create_pg_schema()
    try:
        yield schema_url(name)
    finally:
        drop_pg_schema(name)


def test_upgrade_from_empty_is_idempotent(fresh_url: str) -> None:
    store = ScoreStore(fresh_url)
    try:
        assert store.head_revision() == HEAD_REVISION == "0005"
        store.upgrade()
        assert store.revision() == "0005"
        store.check_schema()
        store.upgrade()  # already at head: nothing to do
        assert store.revision() == "0005"
        tables = set(sa.inspect(store.engine).get_table_names())
        assert tables == {
            "score_runs",
            "scores",
            "run_totals",
            "api_keys",
            "activities",
            "activity_stamp",
            "alert_deliveries",
            VERSION_TABLE,
        }
        indexes = {ix["name"] for ix in sa.inspect(store.engine).get_indexes("scores")}
        assert indexes == {
            "ix_scores_run_probability",
            "ix_scores_run_mrr_at_risk",
            "ix_scores_run_clv",
            "ix_scores_run_change",
            "ix_scores_run_renewal",
            "ix_scores_run_tier",
            "ix_scores_run_filters",
            "ix_scores_account",
        }
    finally:
        store.close()


def test_migrated_schema_matches_the_metadata(store: ScoreStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        diff = compare_metadata(context, metadata)
    # Index column expressions (DESC, NULLS LAST) are not compared; names, columns,
    # types, nullability, keys are.
    assert diff == []


def test_check_schema_says_to_upgrade(fresh_url: str) -> None:
    with ScoreStore(fresh_url) as store:
        message = r"(has no schema yet|does not exist yet): run `churnrisk store upgrade`"
        with pytest.raises(StoreError, match=message) as missing:
            store.check_schema()
        assert missing.value.reason == "schema missing: run `churnrisk store upgrade`"
        if fresh_url.startswith("sqlite"):
            folder = Path(fresh_url.removeprefix("sqlite:///")).parent
            assert not folder.exists()  # checking created nothing
            folder.mkdir(parents=True)
        with pytest.raises(StoreError, match=r"has no score tables .* `churnrisk store upgrade`"):
            store.current_run()
        with pytest.raises(
            StoreError, match=r"no score tables .* run `churnrisk store upgrade`"
        ) as no_tables:
            store.current_run()
        assert no_tables.value.reason == "schema missing: run `churnrisk store upgrade`"


def test_check_schema_rejects_an_unknown_revision(fresh_url: str) -> None:
    with make_store(fresh_url) as store:
        with store.engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
        with pytest.raises(
            StoreError, match=r"revision 9999, which this version of churnrisk"
        ) as newer:
            store.check_schema()
        assert newer.value.reason == "schema is newer than this version: upgrade churnrisk"
        with pytest.raises(StoreError, match=r"revision identified by '9999'.*upgrade churnrisk"):
            store.upgrade()


def test_check_schema_says_an_old_schema_needs_upgrading(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_store(fresh_url) as store:
        monkeypatch.setattr(Database, "head_revision", lambda self: "0006")
        with pytest.raises(
            StoreError, match=r"revision 0005, older than 0006: run `churnrisk"
        ) as older:
            store.check_schema()
        assert (
            older.value.reason == "schema is older than this version: run `churnrisk store upgrade`"
        )


def test_unreachable_store_raises_store_error() -> None:
    with ScoreStore("postgresql+psycopg://postgres:pw@127.0.0.1:1/test") as store:
        with pytest.raises(StoreUnreachableError, match=r"127\.0\.0\.1:1/test is unreachable"):
            store.ping()
        with pytest.raises(StoreUnreachableError, match=r"could not read the current run") as down:
            store.current_run()
    # the message is for the log and the CLI; the reason is for anyone
    assert "postgres:***@127.0.0.1:1/test" in str(down.value)
    assert down.value.reason == "unreachable"


def test_a_failed_statement_is_not_an_unreachable_store(store: ScoreStore) -> None:
    run = write_sample_run(store, "2026-10-01", T0, [score_row("a1", 0.3)])
    with pytest.raises(StoreError, match=r"could not write run") as failed:
        write_sample_run(store, "2026-10-01", T0, [score_row("a1", 0.3)], run_id=run.run_id)
    assert not isinstance(failed.value, StoreUnreachableError)
    assert failed.value.reason == f"could not write run {run.run_id} (nothing was written)"


def test_bad_url_raises_store_error() -> None:
    with pytest.raises(StoreError, match=r"'not a url' is not a database URL"):
        ScoreStore("not a url")
    with pytest.raises(StoreError, match=r"'postgresql://app:\*\*\*@h:port/db' is not a"):
        ScoreStore("postgresql://app:s3cret@h:port/db")
    with pytest.raises(StoreError, match=r"cannot open score store nosuchdb://x") as bad:
        ScoreStore("nosuchdb://x")
    assert bad.value.reason == "the configured store URL cannot be opened: the server log says why"


def test_url_masks_the_password() -> None:
    store = ScoreStore("postgresql+psycopg://app:s3cret@db.example:5432/scores")
    assert store.url == "postgresql+psycopg://app:***@db.example:5432/scores"
    assert "s3cret" not in repr(store)


def test_sqlite_connection_pragmas(tmp_path: Path) -> None:
    with make_store(sqlite_url(tmp_path)) as store, store.engine.connect() as conn:
        pragma = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }
    assert pragma == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": 10000,
        "synchronous": 1,
    }


def test_in_memory_sqlite_store_works() -> None:
    with make_store("sqlite://") as store:
        run = write_sample_run(store, "2026-10-01", T0, [score_row("a1", 0.3)])
        assert store.current_run() == run


def test_deleting_a_run_deletes_its_scores(store: ScoreStore) -> None:
    run = write_sample_run(store, "2026-10-01", T0, [score_row("a1", 0.3), score_row("a2", 0.1)])
    assert count_rows(store, "scores", run.run_id) == 2
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM score_runs WHERE run_id = :r"), {"r": run.run_id})
    assert count_rows(store, "scores") == 0
    assert count_rows(store, "run_totals") == 0


# ---------------------------------------------------------------- writing and reading runs

DRIVERS = [
    driver("dau_mau_30d", 0.4123, 0.08),
    driver("plan", 0.1, "pro"),
    driver("seats", 0.05, 12),
    driver("nps_last", -0.2, None),
]
CHANGE_DRIVERS = [
    {
        "feature": "dau_mau_30d",
        "meaning": "DAU/MAU, last 30 days",
        "before": 0.31,
        "after": 0.08,
        "before_display": "0.31",
        "after_display": "0.08",
        "contribution_change": 0.35,
        "direction": "raised",
        "text": "DAU/MAU, last 30 days: 0.31 → 0.08, raised risk",
    }
]


def test_write_and_read_round_trip_with_json_and_nulls(store: ScoreStore) -> None:
    run, frame = sample_run(
        "2026-10-01",
        "2026-10-02T06:00:00.123456",
        [
            score_row(
                "a1",
                0.5,
                mrr=200.0,
                previous_probability=0.25,
                probability_change=0.25,
                drivers=DRIVERS,
                change_drivers=CHANGE_DRIVERS,
                renewal_date=date(2026, 10, 31),
                days_to_renewal=30.0,
                renewal_mrr=150.0,
                context=[driver("days_to_renewal", 0.25, 30)],
            ),
            score_row("a2", 0.125, name=None, segment=None, plan=None, owner=None),
        ],
        previous_run_id="0" * 32,
        source="/data/world",
    )
    frame["previous_probability"] = frame["previous_probability"].astype("float64")  # NaN
    store.write_run(run, frame)

    assert store.current_run() == run
    assert run.scored_at == datetime(2026, 10, 2, 6, 0, 0, 123456, tzinfo=UTC)
    assert store.runs() == [run]
    page = store.at_risk(AtRiskQuery())
    assert page.rows == [
        {
            "run_id": run.run_id,
            "account_id": "a1",
            "name": "Account a1",
            "segment": "smb",
            "plan": "pro",
            "owner": "ana",
            "churn_probability": 0.5,
            "risk_tier": "high",
            "mrr": 200.0,
            "mrr_at_risk": 100.0,
            "revenue_12m": 1200.0,
            "lifetime_clv": 3600.0,
            "previous_probability": 0.25,
            "probability_change": 0.25,
            "drivers": DRIVERS,
            "change_drivers": CHANGE_DRIVERS,
            "renewal_date": date(2026, 10, 31),
            "days_to_renewal": 30.0,
            "renewal_mrr": 150.0,
            "context": [driver("days_to_renewal", 0.25, 30)],
            "last_contact": None,
            "snoozed_until": None,
            "needs_contact": True,  # high tier, never contacted
        },
        {
            "run_id": run.run_id,
            "account_id": "a2",
            "name": None,
            "segment": None,
            "plan": None,
            "owner": None,
            "churn_probability": 0.125,
            "risk_tier": "medium",
            "mrr": 100.0,
            "mrr_at_risk": 12.5,
            "revenue_12m": 1050.0,
            "lifetime_clv": 3150.0,
            "previous_probability": None,
            "probability_change": None,
            "drivers": score_row("x", 0)["drivers"],
            "change_drivers": [],
            "renewal_date": None,
            "days_to_renewal": None,
            "renewal_mrr": None,
            "context": [],
            "last_contact": None,
            "snoozed_until": None,
            "needs_contact": False,
        },
    ]
    assert page.run == run
    assert page.total == 2
    assert page.next_cursor is None


def test_run_to_dict_is_json_ready() -> None:
    run, _ = sample_run("2026-10-01", "2026-10-02T06:00", [], run_id="r1")
    assert run.to_dict() == {
        "run_id": "r1",
        "as_of": "2026-10-01",
        "scored_at": "2026-10-02T06:00:00+00:00",
        "churn_version": "1",
        "clv_version": "1",
        "model_run_id": "mlflow-run",
        "accounts": 0,
        "tiers": {"high": 0.25, "medium": 0.1},
        "low_tier": "low",
        "previous_run_id": None,
        "source": "test",
    }
    assert run.tier_names == ["high", "medium", "low"]


def test_numpy_and_missing_values_in_drivers_are_stored_as_json(store: ScoreStore) -> None:
    items = [{"feature": "f", "value": np.int64(3), "x": np.float64(0.5), "n": np.nan, "na": pd.NA}]
    write_sample_run(store, "2026-10-01", T0, [score_row("a1", 0.3, drivers=items)])
    assert store.at_risk(AtRiskQuery()).rows[0]["drivers"] == [
        {"feature": "f", "value": 3, "x": 0.5, "n": None, "na": None}
    ]


def test_scored_at_is_stored_in_utc(store: ScoreStore) -> None:
    local = datetime(2026, 10, 2, 8, 0, tzinfo=timezone_plus(2))
    run = write_sample_run(store, "2026-10-01", local, [score_row("a1", 0.3)])
    stored = store.current_run()
    assert stored is not None
    assert stored.scored_at == datetime(2026, 10, 2, 6, 0, tzinfo=UTC)
    assert stored.scored_at.tzinfo == UTC
    assert stored == run


def timezone_plus(hours: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=hours))


def test_empty_store_has_no_current_run(store: ScoreStore) -> None:
    assert store.current_run() is None
    assert store.runs() == []
    assert store.previous_run(date(2026, 10, 1)) is None
    assert store.summary() is None
    with pytest.raises(NoRunError, match=r"no scoring run yet: run `churnrisk score DATA`"):
        store.at_risk(AtRiskQuery())


def test_current_run_and_backfill_ordering(store: ScoreStore) -> None:
    rows = [score_row("a1", 0.3)]
    a = write_sample_run(store, "2026-10-01", T0, rows)
    b = write_sample_run(store, "2026-10-01", T0 + timedelta(hours=1), rows)  # rescored
    c = write_sample_run(store, "2026-09-01", T0 + timedelta(hours=2), rows)  # backfill
    assert store.current_run() == b
    assert store.runs() == [b, a, c]
    assert store.runs(limit=2) == [b, a]
    assert store.run(c.run_id) == c
    assert store.run("nope") is None
    # the previous run of a date is the newest run of the latest *earlier* date:
    # never a run of the same date (a re-scored date replaces that date's scores)
    assert store.previous_run(date(2026, 10, 1)) == c
    assert store.previous_run(date(2026, 9, 1)) is None
    assert store.previous_run(date(2026, 11, 1)) == b
    assert store.previous_run(date(2026, 9, 15)) == c


def test_duplicate_account_is_rejected_and_nothing_is_written(store: ScoreStore) -> None:
    first = write_sample_run(store, "2026-10-01", T0, [score_row("a1", 0.3)])
    run, frame = sample_run(
        "2026-11-01", T0 + timedelta(days=30), [score_row("a1", 0.3), score_row("a1", 0.2)]
    )
    with pytest.raises(DataError, match=r"1 duplicate account_id row\(s\) \(a1\)"):
        store.write_run(run, frame)
    assert store.current_run() == first
    assert store.run(run.run_id) is None


def test_a_write_failing_midway_leaves_the_previous_run_current(
    store: ScoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_sample_run(store, "2026-10-01", T0, [score_row("a1", 0.3)])
    run, frame = sample_run(
        "2026-11-01", T0 + timedelta(days=30), [score_row(f"b{i}", 0.1) for i in range(5)]
    )
    monkeypatch.setattr(store_module, "WRITE_BATCH", 2)
    insert = store._insert_scores
    batches: list[int] = []

    def failing_insert(conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
        insert(conn, rows)
        batches.append(len(rows))
        if len(batches) == 2:  # after 4 of the 5 rows went in
            raise sa.exc.OperationalError("INSERT INTO scores", {}, OSError("disk full"))

    monkeypatch.setattr(store, "_insert_scores", failing_insert)
    with pytest.raises(StoreError, match=r"could not write run \w+ \(nothing was written\)"):
        store.write_run(run, frame)
    assert batches == [2, 2]
    assert store.current_run() == first
    assert store.run(run.run_id) is None
    assert count_rows(store, "scores", run.run_id) == 0
    assert count_rows(store, "run_totals", run.run_id) == 0
    monkeypatch.undo()
    store.write_run(run, frame)  # the same run writes fine afterwards
    assert store.current_run() == run


def test_writing_a_run_id_twice_fails_whole(store: ScoreStore) -> None:
    first = write_sample_run(store, "2026-10-01", T0, [score_row("a1", 0.3)])
    run, frame = sample_run(
        "2026-11-01", T0 + timedelta(days=30), [score_row("b1", 0.3)], run_id=first.run_id
    )
    with pytest.raises(StoreError, match=r"could not write run .* \(nothing was written\)"):
        store.write_run(run, frame)
    assert store.runs() == [first]
    assert count_rows(store, "scores") == 1


def test_large_write_in_batches(store: ScoreStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "WRITE_BATCH", 7)
    rows = [score_row(f"a{i:03d}", i / 100) for i in range(30)]
    run = write_sample_run(store, "2026-10-01", T0, rows)
    frame = store.run_scores(run.run_id, ["account_id", "churn_probability"])
    assert frame["account_id"].tolist() == [f"a{i:03d}" for i in range(30)]
    assert frame["churn_probability"].tolist() == [i / 100 for i in range(30)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["mrr", "owner"]), r"missing column 'owner' \(and 1 more\)"),
        (lambda f: f.iloc[:1], r"says accounts=2 but its scores frame has 1 rows"),
        (
            lambda f: f.assign(churn_probability=[0.3, np.nan]),
            r"'churn_probability' is missing for 1 account\(s\) \(first: 'a2'\)",
        ),
        (lambda f: f.assign(account_id=["a1", None]), r"'account_id' is missing for 1 account"),
        (lambda f: f.assign(risk_tier=["high", "severe"]), r"risk_tier value\(s\) severe"),
        (lambda f: f.assign(mrr=[1.0, np.inf]), r"'mrr' holds an infinite value"),
        (lambda f: f.assign(mrr=["1.0", "lots"]), r"scores column 'mrr' is not numeric"),
    ],
)
def test_write_run_validates_the_frame(tmp_path: Path, change: Any, message: str) -> None:
    with make_store(sqlite_url(tmp_path)) as store:
        run, frame = sample_run("2026-10-01", T0, [score_row("a1", 0.3), score_row("a2", 0.05)])
        with pytest.raises(DataError, match=message):
            store.write_run(run, change(frame))
        assert store.current_run() is None


def test_write_run_ignores_extra_columns_and_fills_missing_drivers(store: ScoreStore) -> None:
    run, frame = sample_run("2026-10-01", T0, [score_row("a1", 0.3), score_row("a2", 0.05)])
    frame["extra"] = 1
    frame["change_drivers"] = [None, np.nan]
    store.write_run(run, frame)
    assert [r["change_drivers"] for r in store.at_risk(AtRiskQuery()).rows] == [[], []]


def test_run_scores(store: ScoreStore) -> None:
    run = write_sample_run(
        store,
        "2026-10-01",
        T0,
        [score_row("b", 0.5, previous_probability=0.25), score_row("a", 0.125)],
    )
    frame = store.run_scores(
        run.run_id, ["account_id", "churn_probability", "previous_probability"]
    )
    assert frame["account_id"].tolist() == ["a", "b"]
    assert frame["churn_probability"].tolist() == [0.125, 0.5]
    assert frame["previous_probability"].dtype == "float64"
    assert np.isnan(frame["previous_probability"].iloc[0])
    assert frame["previous_probability"].iloc[1] == 0.25
    everything = store.run_scores(run.run_id)
    assert list(everything.columns) == SCORE_COLUMNS
    assert everything["drivers"].iloc[0] == score_row("a", 0.125)["drivers"]
    with pytest.raises(DataError, match=r"scores has no column 'nope'"):
        store.run_scores(run.run_id, ["account_id", "nope"])
    with pytest.raises(StoreError, match=r"has no run 'missing'"):
        store.run_scores("missing")


def test_readers_see_whole_runs_while_a_run_is_written(store: ScoreStore) -> None:
    write_sample_run(store, "2026-10-01", T0, [score_row(f"a{i}", 0.3) for i in range(10)])
    run, frame = sample_run(
        "2026-11-01", T0 + timedelta(days=30), [score_row(f"b{i:04d}", 0.2) for i in range(3000)]
    )
    seen: list[tuple[str, int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                page = store.at_risk(AtRiskQuery(limit=500))
                seen.append((page.run.run_id, page.total, page.run.accounts))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for t in readers:
        t.start()
    store.write_run(run, frame)
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert seen
    assert all(total == accounts for _, total, accounts in seen)
    assert store.at_risk(AtRiskQuery()).total == 3000


def test_concurrent_writers_all_succeed(store: ScoreStore) -> None:
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            rows = [score_row(f"a{i:03d}", 0.2) for i in range(200)]
            write_sample_run(store, date(2026, 1 + k, 1), T0, rows)
            store.create_key(f"key {k}", "read")
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r.as_of for r in store.runs()] == [date(2026, m, 1) for m in (4, 3, 2, 1)]
    assert len(store.list_keys()) == 4
    assert count_rows(store, "scores") == 800


# ---------------------------------------------------------------- the at-risk list

# (account, probability, segment, plan, owner, mrr, mrr_at_risk, lifetime_clv, change)
ACCOUNTS = [
    ("a1", 0.60, "ent", "pro", "ana", 200.0, 120.0, 500.0, 0.10),
    ("a2", 0.30, "smb", "pro", "bo", 1000.0, 300.0, 2000.0, None),
    ("a3", 0.30, "smb", "basic", "ana", 100.0, 30.0, 800.0, -0.05),
    ("a4", 0.15, "mid", "pro", None, 400.0, 60.0, 3000.0, 0.10),
    ("a5", 0.12, "smb", "basic", "bo", 50.0, 6.0, 100.0, None),
    ("a6", 0.05, "ent", "pro", "ana", 2000.0, 100.0, 9000.0, 0.02),
    ("a7", 0.05, None, None, None, 10.0, 0.5, 10.0, -0.20),
    ("a8", 0.01, "smb", "pro", "bo", 300.0, 3.0, 700.0, 0.0),
]
ORDERS = {
    "probability": ["a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8"],
    "mrr_at_risk": ["a2", "a1", "a6", "a4", "a3", "a5", "a8", "a7"],
    "clv": ["a6", "a4", "a2", "a3", "a8", "a1", "a5", "a7"],
    "change": ["a1", "a4", "a6", "a8", "a3", "a7", "a2", "a5"],
    "renewal": ["a7", "a3", "a1", "a4", "a8", "a5", "a2", "a6"],  # soonest first, none last
}
# account: (days_to_renewal, renewal_mrr); the others have no known renewal
RENEWALS = {
    "a1": (30.0, 200.0),
    "a3": (10.0, 100.0),
    "a4": (30.0, 150.0),  # part of its MRR renews
    "a5": (200.0, 50.0),
    "a7": (0.0, 10.0),
    "a8": (90.0, 300.0),
}
AS_OF = date(2026, 10, 1)


def eight_rows() -> list[dict[str, Any]]:
    return [
        score_row(
            a,
            p,
            segment=seg,
            plan=plan,
            owner=owner,
            mrr=mrr,
            mrr_at_risk=at_risk,
            lifetime_clv=clv,
            previous_probability=None if change is None else p - change,
            probability_change=change,
            days_to_renewal=RENEWALS.get(a, (None, None))[0],
            renewal_date=(AS_OF + timedelta(days=RENEWALS[a][0]) if a in RENEWALS else None),
            renewal_mrr=RENEWALS.get(a, (None, None))[1],
        )
        for a, p, seg, plan, owner, mrr, at_risk, clv, change in ACCOUNTS
    ]


@pytest.fixture
def eight(store: ScoreStore) -> RunRecord:
    """The store with an older run of other accounts and the current run of ACCOUNTS."""
    write_sample_run(store, "2026-09-01", T0 - timedelta(days=30), [score_row("z9", 0.99)])
    return write_sample_run(store, "2026-10-01", T0, eight_rows())


@pytest.mark.parametrize("sort", list(ORDERS))
def test_every_sort(store: ScoreStore, eight: RunRecord, sort: Any) -> None:
    page = store.at_risk(AtRiskQuery(sort=sort))
    assert ids(page.rows) == ORDERS[sort]
    assert page.run == eight
    assert page.total == 8
    assert page.next_cursor is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (AtRiskQuery(tiers=("high",)), ["a1", "a2", "a3"]),
        (AtRiskQuery(tiers=("medium", "low")), ["a4", "a5", "a6", "a7", "a8"]),
        (AtRiskQuery(tiers=("none",)), []),
        (AtRiskQuery(segment="smb"), ["a2", "a3", "a5", "a8"]),
        (AtRiskQuery(plan="basic"), ["a3", "a5"]),
        (AtRiskQuery(owner="ana"), ["a1", "a3", "a6"]),
        (AtRiskQuery(min_probability=0.15), ["a1", "a2", "a3", "a4"]),
        (AtRiskQuery(min_mrr=300.0), ["a2", "a4", "a6", "a8"]),
        (AtRiskQuery(segment="smb", plan="pro", min_mrr=300.0), ["a2", "a8"]),
        (AtRiskQuery(tiers=("low",), owner="ana", sort="clv"), ["a6"]),
        (AtRiskQuery(segment="smb", sort="change"), ["a8", "a3", "a2", "a5"]),
        (AtRiskQuery(renewing_within=30), ["a1", "a3", "a4", "a7"]),
        (AtRiskQuery(renewing_within=0), ["a7"]),
        (AtRiskQuery(renewing_within=29), ["a3", "a7"]),
        (AtRiskQuery(renewing_within=90, sort="renewal"), ["a7", "a3", "a1", "a4", "a8"]),
        (AtRiskQuery(renewing_within=3650, segment="smb", sort="renewal"), ["a3", "a8", "a5"]),
        (AtRiskQuery(owner="ana", sort="renewal"), ["a3", "a1", "a6"]),
    ],
)
def test_every_filter(
    store: ScoreStore, eight: RunRecord, query: AtRiskQuery, expected: list[str]
) -> None:
    page = store.at_risk(query)
    assert ids(page.rows) == expected
    assert page.total == len(expected)


@pytest.mark.parametrize("sort", list(ORDERS))
@pytest.mark.parametrize("limit", range(1, 10))
def test_pages_walk_every_row_once(
    store: ScoreStore, eight: RunRecord, sort: Any, limit: int
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = store.at_risk(AtRiskQuery(sort=sort, limit=limit, cursor=cursor))
        assert page.total == 8
        assert len(page.rows) <= limit
        seen += ids(page.rows)
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.rows) == limit
    assert seen == ORDERS[sort]


def test_pages_with_filters(store: ScoreStore, eight: RunRecord) -> None:
    query = AtRiskQuery(segment="smb", sort="change", limit=1)
    seen = []
    while True:
        page = store.at_risk(query)
        assert page.total == 4
        seen += ids(page.rows)
        if page.next_cursor is None:
            break
        query = AtRiskQuery(segment="smb", sort="change", limit=1, cursor=page.next_cursor)
    assert seen == ["a8", "a3", "a2", "a5"]


def test_cursor_of_an_older_run_is_stale(store: ScoreStore, eight: RunRecord) -> None:
    page = store.at_risk(AtRiskQuery(limit=2))
    assert page.next_cursor is not None
    write_sample_run(store, "2026-11-01", T0 + timedelta(days=30), eight_rows())
    with pytest.raises(StaleCursorError, match=r"start again from the first page"):
        store.at_risk(AtRiskQuery(limit=2, cursor=page.next_cursor))


def b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("cursor", "sort"),
    [
        ("!!!", "probability"),
        ("abc", "probability"),
        (b64(b"not json"), "probability"),
        (b64([1, 2]), "probability"),
        (b64({"run_id": "r", "value": 0.5, "account_id": "a1"}), "probability"),
        (
            b64({"run_id": "r", "sort": "probability", "value": "x", "account_id": "a1"}),
            "probability",
        ),
        (
            b64({"run_id": "r", "sort": "probability", "value": True, "account_id": "a1"}),
            "probability",
        ),
        (
            b64({"run_id": "r", "sort": "probability", "value": None, "account_id": "a1"}),
            "probability",
        ),
        (b64({"run_id": "r", "sort": "probability", "value": 0.5, "account_id": 7}), "probability"),
        (
            b64({"run_id": 1, "sort": "probability", "value": 0.5, "account_id": "a1"}),
            "probability",
        ),
        (b64({"run_id": "r", "sort": "clv", "value": 0.5, "account_id": "a1"}), "probability"),
        # no account id holds a control character, and PostgreSQL cannot compare NUL
        (b64({"run_id": "r", "sort": "clv", "value": 0.5, "account_id": "a\x00"}), "clv"),
        (b64({"run_id": "r", "sort": "clv", "value": 0.5, "account_id": "a\x1f"}), "clv"),
    ],
)
def test_malformed_cursors(store: ScoreStore, eight: RunRecord, cursor: str, sort: Any) -> None:
    with pytest.raises(InvalidCursorError, match=r"^the cursor is not one this API made for"):
        store.at_risk(AtRiskQuery(sort=sort, cursor=cursor))


def test_cursor_of_another_sort_is_invalid(store: ScoreStore, eight: RunRecord) -> None:
    page = store.at_risk(AtRiskQuery(limit=2, sort="clv"))
    with pytest.raises(InvalidCursorError, match=r"with the same `sort`"):
        store.at_risk(AtRiskQuery(limit=2, sort="probability", cursor=page.next_cursor))


def test_cursor_is_urlsafe_base64_json(store: ScoreStore, eight: RunRecord) -> None:
    cursor = store.at_risk(AtRiskQuery(limit=6, sort="change")).next_cursor
    assert cursor is not None
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert decoded == {"run_id": eight.run_id, "sort": "change", "value": -0.2, "account_id": "a7"}
    # a page that starts among the NULL changes
    after_nulls = store.at_risk(AtRiskQuery(limit=1, sort="change", cursor=cursor))
    null_cursor = after_nulls.next_cursor
    assert ids(after_nulls.rows) == ["a2"]
    assert null_cursor is not None
    assert ids(store.at_risk(AtRiskQuery(sort="change", cursor=null_cursor)).rows) == ["a5"]


def test_renewal_cursor_crosses_from_known_renewals_to_none(
    store: ScoreStore, eight: RunRecord
) -> None:
    page = store.at_risk(AtRiskQuery(sort="renewal", limit=6))
    assert ids(page.rows) == ["a7", "a3", "a1", "a4", "a8", "a5"]
    assert page.next_cursor is not None
    cursor = page.next_cursor
    decoded = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert decoded["value"] == 200.0  # a5's days to renewal, the last known one
    page = store.at_risk(AtRiskQuery(sort="renewal", limit=1, cursor=page.next_cursor))
    assert ids(page.rows) == ["a2"]  # the first without a renewal, by id
    assert page.next_cursor is not None
    page = store.at_risk(AtRiskQuery(sort="renewal", limit=1, cursor=page.next_cursor))
    assert (ids(page.rows), page.next_cursor) == (["a6"], None)


# activities: a1 snoozed past "today", a6's snooze ends today (not snoozed); a2 has only a
# note (not a contact), a3 an e-mail 20 days ago, a6 a meeting 9 days ago
TODAY = date(2026, 10, 10)


@pytest.fixture
def touched(store: ScoreStore, eight: RunRecord) -> RunRecord:
    add = store.activities.add
    add("a1", "call", "renewal talk", occurred_at=datetime(2026, 10, 5, 9, tzinfo=UTC),
        snooze_until=date(2026, 10, 20))  # fmt: skip
    add("a2", "note", "to call", occurred_at=datetime(2026, 10, 9, tzinfo=UTC))
    add("a3", "email", "check-in", occurred_at=datetime(2026, 9, 20, 12, tzinfo=UTC))
    add("a6", "meeting", "QBR", occurred_at=datetime(2026, 10, 1, tzinfo=UTC),
        snooze_until=TODAY)  # fmt: skip
    return eight


def contact_of(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, Any, bool]]:
    return {
        r["account_id"]: (r["last_contact"], r["snoozed_until"], r["needs_contact"]) for r in rows
    }


def test_snoozed_accounts_are_hidden_and_rows_carry_their_contact(
    store: ScoreStore, touched: RunRecord
) -> None:
    page = store.at_risk(AtRiskQuery(today=TODAY))
    assert ids(page.rows) == ["a2", "a3", "a4", "a5", "a6", "a7", "a8"]  # a1 snoozed
    assert page.total == 7
    got = contact_of(page.rows)
    # high tier (a2, a3): a2 never contacted (a note is no contact); a3's e-mail is 20 days
    # old, more than 14: both need contact. a6 was met 9 days ago but is not high tier.
    assert got["a2"] == (None, None, True)
    assert got["a3"] == (datetime(2026, 9, 20, 12, tzinfo=UTC), None, True)
    assert got["a6"] == (datetime(2026, 10, 1, tzinfo=UTC), None, False)
    assert got["a4"] == (None, None, False)
    # 30 days: a3's e-mail (on 2026-09-20, after midnight of 2026-09-10) is recent enough
    wide = contact_of(store.at_risk(AtRiskQuery(today=TODAY, contact_days=30)).rows)
    assert wide["a3"][2] is False
    # the boundary: contact_days=20 counts from midnight of 2026-09-20, so the e-mail that
    # day is within it; 19 from midnight of 2026-09-21, so it is not
    on_edge = contact_of(store.at_risk(AtRiskQuery(today=TODAY, contact_days=20)).rows)
    assert on_edge["a3"][2] is False
    off_edge = contact_of(store.at_risk(AtRiskQuery(today=TODAY, contact_days=19)).rows)
    assert off_edge["a3"][2] is True
    shown = store.at_risk(AtRiskQuery(today=TODAY, include_snoozed=True))
    assert ids(shown.rows)[0] == "a1"
    assert shown.total == 8
    assert contact_of(shown.rows)["a1"] == (
        datetime(2026, 10, 5, 9, tzinfo=UTC),
        date(2026, 10, 20),
        False,  # contacted 5 days ago
    )
    # the day the snooze ends, the account is back
    back = store.at_risk(AtRiskQuery(today=date(2026, 10, 20)))
    assert "a1" in ids(back.rows)


def test_snoozed_accounts_leave_every_page_and_the_count(
    store: ScoreStore, touched: RunRecord
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = store.at_risk(AtRiskQuery(sort="renewal", limit=2, cursor=cursor, today=TODAY))
        assert page.total == 7
        seen += ids(page.rows)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["a7", "a3", "a4", "a8", "a5", "a2", "a6"]


def test_renewals_by_tier(store: ScoreStore, touched: RunRecord) -> None:
    got = store.renewals(90, today=TODAY)
    assert got["run"] == touched
    # within 90 days: a7 (0 days, low, 10), a3 (10, high, 100), a1 (30, high, 200; snoozed
    # but listed), a4 (30, medium, 150), a8 (90, low, 300)
    assert got["tiers"] == [
        {"tier": "high", "accounts": 2, "mrr": 300.0, "arr": 3600.0},
        {"tier": "medium", "accounts": 1, "mrr": 150.0, "arr": 1800.0},
        {"tier": "low", "accounts": 2, "mrr": 310.0, "arr": 3720.0},
    ]
    assert got["total"] == {"accounts": 5, "mrr": 760.0, "arr": 9120.0}
    assert ids(got["rows"]) == ["a7", "a3", "a1", "a4", "a8"]
    assert got["rows"][2]["snoozed_until"] == date(2026, 10, 20)
    assert got["truncated"] is False
    mine = store.renewals(90, owner="bo", today=TODAY)
    assert mine["tiers"] == [
        {"tier": "high", "accounts": 0, "mrr": 0.0, "arr": 0.0},
        {"tier": "medium", "accounts": 0, "mrr": 0.0, "arr": 0.0},
        {"tier": "low", "accounts": 1, "mrr": 300.0, "arr": 3600.0},
    ]
    assert ids(mine["rows"]) == ["a8"]
    few = store.reader.renewals(90, today=TODAY, limit=2)
    assert (ids(few["rows"]), few["truncated"], few["total"]["accounts"]) == (
        ["a7", "a3"],
        True,
        5,
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (AtRiskQuery(limit=0), r"limit 0 is below 1"),
        (AtRiskQuery(sort="bogus"), r"sort 'bogus' is not one of probability"),  # type: ignore[arg-type]
    ],
)
def test_invalid_queries(
    store: ScoreStore, eight: RunRecord, query: AtRiskQuery, message: str
) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        store.at_risk(query)


VALUES = st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0])
ROWS = st.lists(
    st.tuples(VALUES, VALUES, VALUES, st.one_of(st.none(), st.sampled_from([-0.5, 0.0, 0.1]))),
    min_size=0,
    max_size=25,
)
REF_KEYS = {"probability": 0, "mrr_at_risk": 1, "clv": 2, "change": 3, "renewal": 4}


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=ROWS,
    sort=st.sampled_from(list(REF_KEYS)),
    limit=st.integers(1, 8),
    tier=st.sampled_from([(), ("high",), ("medium", "low")]),
)
def test_pagination_matches_a_sorted_reference(
    store: ScoreStore, rows: list[tuple[Any, ...]], sort: Any, limit: int, tier: tuple[str, ...]
) -> None:
    previous = store.current_run()
    as_of = date(2026, 1, 1) if previous is None else previous.as_of + timedelta(days=1)
    made = [
        score_row(
            f"a{i:03d}",
            p,
            mrr_at_risk=m,
            lifetime_clv=c,
            probability_change=d,
            previous_probability=None if d is None else 0.5,
            days_to_renewal=None if d is None else 100 * (d + 0.5),  # 0, 50, 60 or none
        )
        for i, (p, m, c, d) in enumerate(rows)
    ]
    write_sample_run(store, as_of, T0, made)
    keep = [r for r in made if not tier or r["risk_tier"] in tier]
    column = {
        "probability": "churn_probability",
        "clv": "lifetime_clv",
        "change": "probability_change",
        "renewal": "days_to_renewal",
    }.get(sort, sort)
    sign = 1.0 if sort == "renewal" else -1.0  # the renewal sort is ascending
    expected = [
        r["account_id"]
        for r in sorted(
            keep, key=lambda r: (r[column] is None, sign * (r[column] or 0.0), r["account_id"])
        )
    ]
    seen: list[str] = []
    cursor = None
    for _ in range(len(made) + 2):
        page = store.at_risk(AtRiskQuery(tiers=tier, sort=sort, limit=limit, cursor=cursor))
        assert page.total == len(keep)
        seen += ids(page.rows)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected


# ---------------------------------------------------------------- the query plan


def plan_of(store: ScoreStore, stmt: sa.Select[Any], *, can_use_index: bool = False) -> str:
    """The plan of ``stmt``; with ``can_use_index``, whether an index can serve it at all.

    PostgreSQL's choice between a sequential and an index-only scan for a count over a
    few thousand rows depends on the visibility map, which another test's open snapshot
    can keep VACUUM from setting; ``can_use_index`` takes sequential scans off the table.
    """
    sql = str(stmt.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    with store.engine.connect() as conn:
        if can_use_index and store.engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
        return "\n".join(str(r[-1]) for r in conn.exec_driver_sql(explain + sql))


def plans_of_calls(store: ScoreStore, call: Any, table: str = "scores") -> list[str]:
    """The query plans of the SELECTs from ``table`` that ``call()`` runs on ``store``."""
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            statements.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    explain = "EXPLAIN QUERY PLAN " if store.engine.dialect.name == "sqlite" else "EXPLAIN "
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "postgresql":
            # At a few thousand rows PostgreSQL rightly prefers a sequential scan for a
            # count whenever the visibility map is not yet all-visible (another test's
            # open snapshot keeps VACUUM from setting it); here we ask whether an index
            # can serve each statement. The page query's own choice is checked above
            # without this setting.
            conn.exec_driver_sql("SET enable_seqscan = off")
        return [
            "\n".join(str(r[-1]) for r in conn.exec_driver_sql(explain + sql, params))
            for sql, params in statements
        ]


@pytest.fixture
def big(store: ScoreStore) -> RunRecord:
    """Two runs of 4,000 accounts (planner statistics are refreshed by write_run)."""
    rng = np.random.default_rng(0)
    for k in range(2):
        p = rng.random(4000).round(3)
        rows = [
            score_row(
                f"a{i:05d}",
                float(p[i]),
                segment=["smb", "mid", "ent"][i % 3],
                probability_change=None if i % 4 == 0 else float(p[i] - 0.5),
                previous_probability=None if i % 4 == 0 else 0.5,
                days_to_renewal=None if i % 5 == 0 else float(i % 365),
            )
            for i in range(4000)
        ]
        run = write_sample_run(store, date(2026, 9 + k, 1), T0, rows)
    return run


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (AtRiskQuery(), "ix_scores_run_probability"),
        (AtRiskQuery(sort="mrr_at_risk"), "ix_scores_run_mrr_at_risk"),
        (AtRiskQuery(sort="clv"), "ix_scores_run_clv"),
        (AtRiskQuery(sort="change"), "ix_scores_run_change"),
        (AtRiskQuery(tiers=("medium",)), "ix_scores_run_tier"),
        (AtRiskQuery(segment="smb"), "ix_scores_run_probability"),
        (AtRiskQuery(sort="renewal"), "ix_scores_run_renewal"),
        (AtRiskQuery(sort="renewal", renewing_within=90, segment="smb"), "ix_scores_run_renewal"),
    ],
)
@pytest.mark.parametrize("with_cursor", [False, True])
def test_at_risk_query_walks_an_index_without_sorting(
    store: ScoreStore, big: RunRecord, query: AtRiskQuery, index: str, with_cursor: bool
) -> None:
    after = (0.25, "a01000") if with_cursor else None
    plan = plan_of(
        store, at_risk_select(query, big.run_id, dialect=store.engine.dialect.name, after=after)
    )
    if store.engine.dialect.name == "sqlite":
        assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert re.search(rf"Index (Only )?Scan using {index} on scores", plan), plan
        assert "Sort" not in plan, plan
    # and every statement the real call runs on scores (page and count) reads an index
    if with_cursor:
        first = store.at_risk(replace(query, limit=1000))
        query = replace(query, cursor=first.next_cursor)
    plans = plans_of_calls(store, lambda: store.at_risk(query))
    assert plans
    for plan in plans:
        assert not re.search(r"TEMP B-TREE|Sort|^SCAN scores$|Seq Scan", plan, re.M), plan


@pytest.mark.parametrize("with_cursor", [False, True])
def test_renewal_sort_walks_its_index_past_the_known_renewals(
    store: ScoreStore, big: RunRecord, with_cursor: bool
) -> None:
    """The accounts without a renewal follow the known ones by a second seek of the index."""
    query = AtRiskQuery(sort="renewal")
    after = (None, "a01000") if with_cursor else None
    stmt = at_risk_select(
        query, big.run_id, dialect=store.engine.dialect.name, after=after, nulls=True, limit=10
    )
    plan = plan_of(store, stmt)
    if store.engine.dialect.name == "sqlite":
        assert re.search(r"USING (COVERING )?INDEX ix_scores_run_renewal", plan), plan
        assert "TEMP B-TREE" not in plan, plan
    else:
        assert re.search(r"Index (Only )?Scan using ix_scores_run_renewal on scores", plan), plan
        assert "Sort" not in plan, plan
    # a page that spans both walks: the last known renewals, then the first without one
    first = store.at_risk(replace(query, limit=3190))
    assert first.rows[-1]["days_to_renewal"] is not None
    statements = plans_of_calls(
        store, lambda: store.at_risk(replace(query, cursor=first.next_cursor))
    )
    assert len(statements) >= 2
    for plan in statements:
        assert not re.search(r"TEMP B-TREE|Sort|^SCAN scores$|Seq Scan", plan, re.M), plan


@pytest.mark.parametrize(
    "query",
    [AtRiskQuery(segment="smb"), AtRiskQuery(tiers=("high", "low"), owner="ana", min_mrr=1.0)],
)
def test_filtered_counts_are_served_by_an_index(
    store: ScoreStore, big: RunRecord, query: AtRiskQuery
) -> None:
    from churnrisk.store.store import at_risk_filters

    stmt = sa.select(sa.func.count()).select_from(scores).where(*at_risk_filters(query, big.run_id))
    plan = plan_of(store, stmt, can_use_index=True)
    if store.engine.dialect.name == "sqlite":
        # ix_scores_run_filters, or a sort index of the run that carries the filter
        # columns too (SQLite weighs them by its estimate of their row widths)
        assert re.search(r"USING COVERING INDEX ix_scores_run_(filters|renewal)\b", plan), plan
    else:
        # An index-only scan of ix_scores_run_filters when the visibility map is set.
        # While another test's open snapshot keeps VACUUM from setting it, the planner
        # may pick another index of the run that carries the filter columns too, or a
        # bitmap over one (seen twice on a loaded machine): an index still answers.
        used = re.search(r"(Index Only Scan|Index Scan|Bitmap Index Scan) \w+ ix_scores_run_", plan)
        assert used, plan
        assert "Seq Scan" not in plan, plan


def test_account_detail_uses_the_account_index(store: ScoreStore, big: RunRecord) -> None:
    plans = plans_of_calls(store, lambda: store.account_detail("a00007"))
    assert any("ix_scores_account" in p for p in plans), plans
    full_scans = ("SCAN scores", "Seq Scan on scores")
    assert not any(scan in p for p in plans for scan in full_scans), plans


# ---------------------------------------------------------------- account detail, summary


def _history(*points: tuple[RunRecord, float, str, float]) -> list[dict[str, Any]]:
    return [
        {
            "run_id": run.run_id,
            "as_of": run.as_of,
            "scored_at": run.scored_at,
            "churn_probability": p,
            "risk_tier": tier,
            "mrr": mrr,
            "mrr_at_risk": mrr * p,
            "lifetime_clv": 3 * (12 * mrr * (1 - p)),
        }
        for run, p, tier, mrr in points
    ]


def test_account_detail_is_the_latest_row_and_the_history_oldest_first(
    store: ScoreStore,
) -> None:
    sep = write_sample_run(
        store, "2026-09-01", T0 - timedelta(days=30), [score_row("a1", 0.1), score_row("gone", 0.4)]
    )
    octo = write_sample_run(
        store,
        "2026-10-01",
        T0,
        [
            score_row("a1", 0.3, mrr=50.0, previous_probability=0.1, probability_change=0.2),
            score_row("a2", 0.2),
        ],
        churn_version="2",
        clv_version="3",
        previous_run_id=None,
    )
    aug = write_sample_run(
        store, "2026-08-01", T0 + timedelta(hours=1), [score_row("a1", 0.9)]
    )  # a backfill: it joins the history, it does not become the latest score
    found = store.account_detail("a1")
    assert found is not None
    latest, history = found
    assert latest == {
        **score_row("a1", 0.3, mrr=50.0, previous_probability=0.1, probability_change=0.2),
        "run_id": octo.run_id,
        "as_of": date(2026, 10, 1),
        "scored_at": T0,
        "churn_version": "2",
        "clv_version": "3",
        "previous_as_of": None,
        "current": True,
    }
    assert history == _history(
        (aug, 0.9, "high", 100.0), (sep, 0.1, "medium", 100.0), (octo, 0.3, "high", 50.0)
    )
    a2 = store.account_detail("a2")
    assert a2 is not None
    assert [h["run_id"] for h in a2[1]] == [octo.run_id]
    gone = store.account_detail("gone")
    assert gone is not None
    assert (gone[0]["run_id"], gone[0]["current"], gone[0]["as_of"]) == (
        sep.run_id,
        False,
        date(2026, 9, 1),
    )
    # the caller's idea of the current run decides `current`
    gone = store.account_detail("gone", current_run_id=sep.run_id)
    assert gone is not None
    assert gone[0]["current"] is True
    assert store.account_detail("never") is None


def test_a_rescored_date_replaces_its_point_in_the_history(store: ScoreStore) -> None:
    sep = write_sample_run(store, "2026-09-01", T0, [score_row("a1", 0.1), score_row("a2", 0.2)])
    write_sample_run(
        store,
        "2026-10-01",
        T0 + timedelta(days=30),
        [score_row("a1", 0.3, previous_probability=0.1), score_row("a2", 0.25)],
        previous_run_id=sep.run_id,
    )
    # 1 Oct scored again (a retry): a2 is no longer in it
    again = write_sample_run(
        store,
        "2026-10-01",
        T0 + timedelta(days=30, hours=2),
        [score_row("a1", 0.35, previous_probability=0.1)],
        previous_run_id=sep.run_id,
    )
    found = store.account_detail("a1")
    assert found is not None
    latest, history = found
    assert (latest["run_id"], latest["previous_as_of"], latest["current"]) == (
        again.run_id,
        date(2026, 9, 1),
        True,
    )
    assert history == _history((sep, 0.1, "medium", 100.0), (again, 0.35, "high", 100.0))
    # a2's row of the replaced run is not its latest score any more: its last date is 1 Sep
    a2 = store.account_detail("a2")
    assert a2 is not None
    assert (a2[0]["run_id"], a2[0]["current"]) == (sep.run_id, False)
    assert [h["run_id"] for h in a2[1]] == [sep.run_id]


def test_summary_of_the_current_run(store: ScoreStore, eight: RunRecord) -> None:
    assert store.summary() == {
        "run": eight.to_dict(),
        "accounts": 8,
        "mrr": 4060.0,
        "mrr_at_risk": 619.5,
        "tiers": [
            {"tier": "high", "accounts": 3, "mrr_at_risk": 450.0},
            {"tier": "medium", "accounts": 2, "mrr_at_risk": 66.0},
            {"tier": "low", "accounts": 3, "mrr_at_risk": 103.5},
        ],
        "segments": ["ent", "mid", "smb"],
        "plans": ["basic", "pro"],
        "owners": ["ana", "bo"],
    }


def test_summary_lists_empty_tiers(store: ScoreStore) -> None:
    run = write_sample_run(store, "2026-10-01", T0, [score_row("a1", 0.5, owner=None)])
    summary = store.summary()
    assert summary is not None
    assert summary["run"] == run.to_dict()
    assert summary["tiers"] == [
        {"tier": "high", "accounts": 1, "mrr_at_risk": 50.0},
        {"tier": "medium", "accounts": 0, "mrr_at_risk": 0.0},
        {"tier": "low", "accounts": 0, "mrr_at_risk": 0.0},
    ]
    assert summary["owners"] == []


# ---------------------------------------------------------------- risk trend


def _trend_rows(p_high: float, p_low: float, mrr: float) -> list[dict[str, Any]]:
    """Two high accounts at ``p_high`` and one low at ``p_low``, each with ``mrr``."""
    return [
        score_row("a1", p_high, mrr=mrr),
        score_row("a2", p_high, mrr=mrr),
        score_row("a3", p_low, mrr=mrr),
    ]


def test_trend_is_one_point_per_as_of_oldest_first(store: ScoreStore) -> None:
    assert store.trend() == []
    sep = write_sample_run(store, "2026-09-01", T0, _trend_rows(0.5, 0.05, 100.0))
    write_sample_run(store, "2026-10-01", T0 + timedelta(days=30), _trend_rows(0.4, 0.05, 100.0))
    # 1 Oct re-scored: its newest run replaces it in the trend
    octo = write_sample_run(
        store, "2026-10-01", T0 + timedelta(days=31), _trend_rows(0.3, 0.2, 200.0)
    )
    # a backfill of an older date scored last joins the trend in as-of order
    aug = write_sample_run(
        store, "2026-08-01", T0 + timedelta(days=40), [score_row("a1", 0.15, mrr=80.0)]
    )
    points = store.trend()
    assert [p["run"] for p in points] == [aug, sep, octo]
    assert points[1] == {
        "run": sep,
        "accounts": 3,
        "mrr": 300.0,
        "mrr_at_risk": 105.0,  # 50 + 50 + 5
        "tiers": [
            {"tier": "high", "accounts": 2, "mrr": 200.0, "mrr_at_risk": 100.0},
            {"tier": "medium", "accounts": 0, "mrr": 0.0, "mrr_at_risk": 0.0},
            {"tier": "low", "accounts": 1, "mrr": 100.0, "mrr_at_risk": 5.0},
        ],
    }
    assert points[2]["mrr_at_risk"] == 160.0  # 60 + 60 + 40
    assert [t["accounts"] for t in points[2]["tiers"]] == [2, 1, 0]
    assert [t["mrr_at_risk"] for t in points[0]["tiers"]] == [0.0, 12.0, 0.0]
    # the latest two as-of dates
    assert [p["run"] for p in store.trend(limit=2)] == [sep, octo]
    # one run's totals, whether or not the trend shows it
    assert store.totals(sep.run_id) == points[1]
    first_of_october = [r for r in store.runs() if r.as_of == octo.as_of and r != octo]
    replaced = store.totals(first_of_october[0].run_id)
    assert replaced is not None
    assert replaced["mrr_at_risk"] == 85.0  # 40 + 40 + 5: the first run of 1 Oct
    assert store.totals("0" * 32) is None


def test_upgrading_from_0001_fills_the_totals_of_stored_runs(store: ScoreStore) -> None:
    from alembic import command

    write_sample_run(store, "2026-09-01", T0, _trend_rows(0.5, 0.05, 100.0))
    write_sample_run(store, "2026-10-01", T0 + timedelta(days=30), _trend_rows(0.3, 0.2, 200.0))
    before = store.trend()
    config = store.database._alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    assert "run_totals" not in sa.inspect(store.engine).get_table_names()
    assert store.revision() == "0001"
    store.upgrade()
    assert store.revision() == "0005"
    assert count_rows(store, "run_totals") == 4  # high and low of each run
    assert store.trend() == before


def test_upgrading_from_0002_keeps_stored_scores_with_no_renewal_or_context(
    store: ScoreStore,
) -> None:
    from alembic import command

    run = write_sample_run(
        store,
        "2026-10-01",
        T0,
        [
            score_row(
                "a1",
                0.3,
                renewal_date=date(2026, 11, 15),
                days_to_renewal=45.0,
                context=[driver("days_to_renewal", 0.3, 45)],
            ),
            score_row("a2", 0.05),
        ],
    )
    config = store.database._alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("scores")}
    assert {"renewal_date", "days_to_renewal", "context"}.isdisjoint(columns)
    store.upgrade()
    assert store.revision() == "0005"
    got = store.run_scores(run.run_id, columns=["account_id", "renewal_date", "context"])
    assert got["renewal_date"].tolist() == [None, None]
    assert got["context"].tolist() == [[], []]
    # a run written now keeps them
    later = write_sample_run(
        store,
        "2026-11-01",
        T0 + timedelta(days=30),
        [score_row("a1", 0.3, renewal_date=date(2026, 11, 15), days_to_renewal=14.0)],
    )
    again = store.run_scores(later.run_id, columns=["renewal_date", "days_to_renewal"])
    assert again.to_dict("records") == [
        {"renewal_date": date(2026, 11, 15), "days_to_renewal": 14.0}
    ]


# ---------------------------------------------------------------- export


def test_export_without_runs(store: ScoreStore) -> None:
    run, batches = store.export_rows(None)
    assert run is None
    assert list(batches) == []


def test_export_in_batches_ordered_by_account(store: ScoreStore, eight: RunRecord) -> None:
    run, batches = store.export_rows(None, batch_size=3)
    assert run == eight
    got = list(batches)
    assert [len(b) for b in got] == [3, 3, 2]
    rows = [r for b in got for r in b]
    assert ids(rows) == [f"a{i}" for i in range(1, 9)]
    assert all(list(r) == ALL_COLUMNS for r in rows)
    listed = [{c: r[c] for c in ALL_COLUMNS} for r in store.at_risk(AtRiskQuery()).rows]
    assert rows == sorted(listed, key=lambda r: r["account_id"])


@pytest.mark.parametrize(
    ("updated_since", "exported"),
    [
        (None, True),
        (T0 - timedelta(microseconds=1), True),
        (T0, False),
        (T0 + timedelta(seconds=1), False),
        (datetime(2026, 10, 2, 5, 59), True),  # naive: UTC
        (datetime(2026, 10, 2, 7, 59, tzinfo=timezone_plus(2)), True),
        (datetime(2026, 10, 2, 8, 0, tzinfo=timezone_plus(2)), False),
    ],
)
def test_export_updated_since(
    store: ScoreStore, eight: RunRecord, updated_since: datetime | None, exported: bool
) -> None:
    run, batches = store.export_rows(updated_since)
    rows = [r for b in batches for r in b]
    assert (run == eight, len(rows)) == ((True, 8) if exported else (False, 0))
    if not exported:
        assert run is None


def test_export_batch_size_must_be_positive(store: ScoreStore) -> None:
    with pytest.raises(InvalidQueryError, match=r"batch_size 0 is below 1"):
        store.export_rows(None, batch_size=0)


# ---------------------------------------------------------------- API keys

KEY = re.compile(r"crk_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")


def test_create_and_verify_a_key(store: ScoreStore) -> None:
    before = datetime.now(UTC)
    key, record = store.create_key(" crm sync ", "read")
    match = KEY.fullmatch(key)
    assert match is not None
    assert record.key_id == match.group(1)
    assert (record.name, record.scope, record.revoked_at) == ("crm sync", "read", None)
    assert before <= record.created_at <= datetime.now(UTC)
    assert store.verify_key(key) == record
    assert store.list_keys() == [record]
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT * FROM api_keys")).mappings().one()
    assert stored["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert all(key.split("_", 2)[2] not in str(v) for v in stored.values())


def test_wrong_and_malformed_keys_do_not_verify(store: ScoreStore) -> None:
    key, record = store.create_key("ops", "admin")
    secret = key.split("_", 2)[2]
    other = "A" if secret[0] != "A" else "B"
    for candidate in [
        f"crk_{record.key_id}_{other}{secret[1:]}",
        key + "x",
        key[:-1],
        f"crk_{'0' * 16}_{secret}",
        f"crk_{record.key_id.upper()}_{secret}",
        f"Bearer {key}",
        key.replace("crk_", "crx_"),
        f"crk_{record.key_id}_",
        f"crk_{record.key_id}",
        "crk_",
        "",
        "x" * 10_000,
    ]:
        assert store.verify_key(candidate) is None, candidate
    assert store.verify_key(key) == record


def test_revoke_a_key(store: ScoreStore) -> None:
    key, record = store.create_key("ops", "admin")
    other_key, other = store.create_key("crm", "read")
    assert store.revoke_key(record.key_id) is True
    assert store.verify_key(key) is None
    assert store.verify_key(other_key) == other
    assert store.revoke_key(record.key_id) is False  # already revoked
    assert store.revoke_key("0" * 16) is False
    listed = {k.key_id: k for k in store.list_keys()}
    assert listed[other.key_id] == other
    revoked_at = listed[record.key_id].revoked_at
    assert revoked_at is not None
    assert revoked_at.tzinfo == UTC
    assert revoked_at >= record.created_at


def test_key_scope_and_name_are_checked(store: ScoreStore) -> None:
    with pytest.raises(ConfigError, match=r"scope 'owner' is not one of read, write, admin"):
        store.create_key("x", "owner")
    with pytest.raises(ConfigError, match=r"needs a name"):
        store.create_key("  ", "read")
    assert store.list_keys() == []


# ---------------------------------------------------------------- the rooms


def test_the_rooms_work_on_their_own_over_one_database(store_url: str) -> None:
    database = Database(store_url)
    try:
        database.upgrade()
        database.check_schema()
        writer, reader, keys = RunWriter(database), ScoreReader(database), KeyStore(database)
        batches: list[int] = []

        def insert(conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
            batches.append(len(rows))
            writer.insert_scores(conn, rows)

        run, frame = sample_run("2026-10-01", T0, [score_row(f"a{i}", i / 10) for i in range(5)])
        writer.write(run, frame, batch_size=2, insert=insert)
        assert batches == [2, 2, 1]
        assert reader.current_run() == run
        assert reader.runs() == [run]
        assert reader.run_scores(run.run_id, ["account_id"])["account_id"].tolist() == [
            "a0",
            "a1",
            "a2",
            "a3",
            "a4",
        ]
        latest, history = reader.account_detail("a3") or ({}, [])
        assert (latest["churn_probability"], latest["current"]) == (0.3, True)
        assert [point["run_id"] for point in history] == [run.run_id]
        key, record = keys.create_key("nightly sync", "read")
        assert keys.verify_key(key) == record
        assert keys.list_keys() == [record]
        # the store over the same database sees what the rooms wrote
        with ScoreStore(store_url) as store:
            assert store.current_run() == run
            assert store.verify_key(key) == record
            assert (store.database.url, store.url) == (database.url, database.url)
    finally:
        database.close()


def test_the_activity_stamp_moves_with_every_write(store: ScoreStore) -> None:
    before = store.activities.stamp()
    store.activities.add("a1", "call", "hello")
    assert store.activities.stamp() == before + 1
    frame = pd.DataFrame(
        {
            "account_id": ["a1", "a2"],
            "occurred_at": [datetime(2026, 9, 1, tzinfo=UTC), datetime(2026, 9, 2, tzinfo=UTC)],
            "kind": ["call", "email"],
        }
    )
    assert store.activities.import_frame(frame) == 2
    assert store.activities.stamp() == before + 2  # one import, one step
    assert store.activities.import_frame(frame) == 0  # nothing new: the stamp stays
    assert store.activities.stamp() == before + 2


def test_last_before_reads_each_accounts_latest_row_by_its_date(store: ScoreStore) -> None:
    write_sample_run(
        store, "2026-01-01", "2026-01-02T06:00:00", [score_row("X", 0.1), score_row("Y", 0.2)]
    )
    write_sample_run(
        store, "2026-02-01", "2026-02-02T06:00:00", [score_row("X", 0.3), score_row("Y", 0.4)]
    )
    # 02-01 scored again with X alone: that date's scores are the newer run's
    write_sample_run(store, "2026-02-01", "2026-02-03T06:00:00", [score_row("X", 0.35)])
    write_sample_run(
        store, "2026-03-01", "2026-03-02T06:00:00", [score_row("X", 0.5), score_row("Y", 0.6)]
    )
    until = {
        "X": date(2026, 2, 15),  # the re-scored 02-01
        "Y": date(2026, 3, 1),  # a run on the day counts
        "Z": date(2026, 3, 1),  # never scored
        "W": date(2025, 12, 1),  # before every run
    }
    got = store.last_before(until, ["churn_probability"])
    assert got.to_dict("records") == [
        {"account_id": "X", "churn_probability": 0.35, "as_of": date(2026, 2, 1)},
        {"account_id": "Y", "churn_probability": 0.6, "as_of": date(2026, 3, 1)},
    ]
    until["Y"] = date(2026, 2, 28)  # Y is not in the newest run of 02-01: 01-01 is its last
    assert store.last_before(until, ["churn_probability"])["churn_probability"].tolist() == [
        0.35,
        0.2,
    ]
    latest_only = store.last_before(until | {"Y": date(2026, 3, 1)}, ["churn_probability"], runs=1)
    assert latest_only["account_id"].tolist() == ["Y"]
    assert store.last_before({}, ["churn_probability"]).empty
