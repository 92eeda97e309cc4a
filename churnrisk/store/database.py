"""The score store's database: the engine, SQLite and PostgreSQL tuning, the schema's revision.

SQLite file by default, PostgreSQL (``postgresql+psycopg://...``) by URL; SQLAlchemy 2
Core, one :class:`~sqlalchemy.engine.Engine` with a connection pool per store, safe to
share between threads (the API serves from a thread pool).

The schema is versioned with Alembic (``migrations/``, run by :meth:`Database.upgrade`,
no ``alembic.ini``); :meth:`Database.check_schema` tells a service that the schema is
missing or old instead of migrating silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from churnrisk.store.errors import (
    BAD_URL,
    SCHEMA_MISSING,
    SCHEMA_NEWER,
    SCHEMA_OLDER,
    StoreError,
    StoreUnreachableError,
    _reason,
    _unreachable,
    mask_password,
)
from churnrisk.store.schema import VERSION_TABLE

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_SQLITE_BUSY_TIMEOUT_MS = 10_000
_WRITE_OPTION = "churnrisk_write"
_SQLITE_ANALYSIS_LIMIT = 1000
"""Rows SQLite's ANALYZE samples per index: enough for the planner, quick at any size."""


def _json_default(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(
        value, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    ).decode()


class Database:
    """One SQL database (SQLite or PostgreSQL) holding the score store, and its schema.

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path/scores.db`` or
        ``postgresql+psycopg://user@host:5432/db`` (a schema other than ``public`` with
        ``?options=-csearch_path%3Dname``).

    Notes
    -----
    Opening a database connects to nothing and does not touch the schema: call
    :meth:`upgrade` (the CLI does) or :meth:`check_schema` (the service does). SQLite
    connections run with ``journal_mode=WAL`` (readers never wait for the writer),
    ``foreign_keys=ON``, ``synchronous=NORMAL`` and a 10-second busy timeout, and every
    transaction starts with an explicit ``BEGIN`` so reads are consistent snapshots.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = sa.make_url(url)
        except (sa.exc.ArgumentError, ValueError) as err:
            shown = mask_password(url)
            raise StoreError(
                f"score store URL {shown!r} is not a database URL: give e.g. "
                "sqlite:///path/scores.db or postgresql+psycopg://user@host:5432/db",
                reason=BAD_URL,
            ) from err
        self._url = parsed
        self._masked = parsed.render_as_string(hide_password=True)
        try:
            self._engine = _make_engine(parsed)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as err:
            raise StoreError(
                f"cannot open score store {self._masked}: {_reason(err)}; "
                "use sqlite:///... or postgresql+psycopg://...",
                reason=BAD_URL,
            ) from err
        self._sqlite = parsed.get_backend_name() == "sqlite"
        # Write transactions: on SQLite they BEGIN IMMEDIATE, taking the write lock up
        # front (waiting up to the busy timeout) rather than failing on a lock upgrade.
        self._writer = self._engine.execution_options(**{_WRITE_OPTION: True})

    @property
    def url(self) -> str:
        """The store's URL with any password masked, for messages."""
        return self._masked

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (reads; tests and tools)."""
        return self._engine

    @property
    def writer(self) -> Engine:
        """The engine for write transactions (``BEGIN IMMEDIATE`` on SQLite)."""
        return self._writer

    @property
    def sqlite(self) -> bool:
        """Whether the database is SQLite (else PostgreSQL, or another SQLAlchemy backend)."""
        return self._sqlite

    def __repr__(self) -> str:
        return f"Database({self._masked!r})"

    def close(self) -> None:
        """Close every pooled connection (the store can still be used afterwards)."""
        self._engine.dispose()

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn a SQLAlchemy error inside the block into a :class:`StoreError` naming ``action``.

        A missing table says to run the migrations; a database that does not answer
        raises :class:`StoreUnreachableError`.
        """
        try:
            yield
        except sa.exc.SQLAlchemyError as err:
            reason = _reason(err)
            lowered = reason.lower()
            missing_table = "no such table" in lowered or (
                lowered.startswith("relation ") and "does not exist" in lowered
            )
            if missing_table:
                raise StoreError(
                    f"score store {self._masked} has no score tables ({reason}): "
                    "run `churnrisk store upgrade`",
                    reason=SCHEMA_MISSING,
                ) from err
            message = f"score store {self._masked}: could not {action}: {reason}"
            if _unreachable(err):
                raise StoreUnreachableError(message) from err
            raise StoreError(message, reason=f"could not {action}") from err

    def ping(self) -> None:
        """Check that the database answers, or raise :class:`StoreUnreachableError`."""
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except (sa.exc.SQLAlchemyError, OSError) as err:
            raise StoreUnreachableError(
                f"score store {self._masked} is unreachable: {_reason(err)}"
            ) from err

    def _alembic_config(self) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        return config

    def head_revision(self) -> str:
        """Return the schema revision this version of churnrisk expects."""
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self._alembic_config()).get_current_head()
        if head is None:  # pragma: no cover - the package ships its migrations
            raise StoreError(f"no migrations found in {MIGRATIONS}: reinstall churnrisk")
        return head

    def revision(self) -> str | None:
        """Return the database's schema revision, or None when it has no schema yet."""
        from alembic.runtime.migration import MigrationContext

        with self.errors("read the schema revision"), self._engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return context.get_current_revision()

    def upgrade(self) -> None:
        """Create or migrate the schema to the newest revision (does nothing when current).

        For a SQLite file, the folder holding it is created first.
        """
        from alembic import command

        database = self._url.database
        if self._sqlite and database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        from alembic.util import CommandError

        config = self._alembic_config()
        self.ping()
        try:
            with self.errors("migrate the schema"), self._writer.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except CommandError as err:
            raise StoreError(
                f"cannot migrate score store {self._masked}: {err}; its schema is newer "
                "than this version of churnrisk knows: upgrade churnrisk",
                reason=SCHEMA_NEWER,
            ) from err

    def check_schema(self) -> None:
        """Raise :class:`StoreError` unless the schema is at the revision this code expects."""
        database = self._url.database
        if self._sqlite and database and database != ":memory:" and not Path(database).exists():
            raise StoreError(
                f"score store {self._masked} does not exist yet: run `churnrisk store upgrade`",
                reason=SCHEMA_MISSING,
            )
        self.ping()
        current, head = self.revision(), self.head_revision()
        if current == head:
            return
        if current is None:
            raise StoreError(
                f"score store {self._masked} has no schema yet: run `churnrisk store upgrade`",
                reason=SCHEMA_MISSING,
            )
        from alembic.script import ScriptDirectory
        from alembic.util import CommandError

        try:
            ScriptDirectory.from_config(self._alembic_config()).get_revision(current)
        except CommandError as err:
            raise StoreError(
                f"score store {self._masked} is at schema revision {current}, which this "
                f"version of churnrisk does not know (it expects {head}): upgrade churnrisk",
                reason=SCHEMA_NEWER,
            ) from err
        raise StoreError(
            f"score store {self._masked} is at schema revision {current}, older than {head}: "
            "run `churnrisk store upgrade`",
            reason=SCHEMA_OLDER,
        )

    def refresh_statistics(self) -> None:
        """Refresh the planner's statistics (and PostgreSQL's visibility map) after a write.

        Without them the planner does not know how the runs' rows spread over the
        indexes and may walk the wrong one, e.g. the sort index of a page sorted by MRR at
        risk with a minimum probability, whose filter then reads most of the table.
        SQLite's statistics are sampled (``analysis_limit``), so this costs a fraction of
        a second at any size; PostgreSQL's visibility map also lets counts use index-only
        scans. The run is committed already, so a failure here is logged, not raised.
        """
        if self._sqlite:
            try:
                with self._engine.connect() as conn:
                    conn.exec_driver_sql(f"PRAGMA analysis_limit={_SQLITE_ANALYSIS_LIMIT}")
                    conn.exec_driver_sql("ANALYZE")
                    conn.commit()
            except sa.exc.SQLAlchemyError as err:
                logger.warning("score store %s: ANALYZE failed: %s", self._masked, _reason(err))
            return
        if self._engine.dialect.name != "postgresql":
            return
        try:
            with self._engine.connect() as conn:
                autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
                autocommit.exec_driver_sql("VACUUM (ANALYZE) scores")
                autocommit.exec_driver_sql("ANALYZE score_runs")
        except sa.exc.SQLAlchemyError as err:
            logger.warning("score store %s: VACUUM ANALYZE failed: %s", self._masked, _reason(err))


def _make_engine(url: URL) -> Engine:
    options: dict[str, Any] = {
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    if url.get_backend_name() == "sqlite":
        memory = url.database in (None, "", ":memory:")
        options["connect_args"] = {"check_same_thread": False}
        if memory:
            options["poolclass"] = sa.pool.StaticPool
        engine = sa.create_engine(url, **options)
        sa.event.listen(engine, "connect", _sqlite_on_connect(memory=memory))
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if url.get_backend_name() == "postgresql" and "connect_timeout" not in url.query:
        options["connect_args"] = {"connect_timeout": 10}
    options["pool_pre_ping"] = True
    return sa.create_engine(url, **options)


def _sqlite_on_connect(*, memory: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module: SQLAlchemy's "begin" event
        # emits BEGIN (see _sqlite_on_begin), so reads are snapshots too.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    return on_connect


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
