"""The score store: scoring runs, per-account scores and API keys in one SQL database.

:class:`ScoreStore` is the one object the CLI, the scoring jobs and the API hold. It is a
composition of four rooms, each with one job, reachable as attributes and through the
store's own methods (which keep the interface callers use):

``database`` (:class:`~churnrisk.store.database.Database`)
    The engine, SQLite and PostgreSQL tuning, error translation and the schema's
    revision (upgrade and check).
``writer`` (:class:`~churnrisk.store.runs.RunWriter`)
    Writes a run and its rows in one transaction.
``reader`` (:class:`~churnrisk.store.reads.ScoreReader`)
    Runs, a run's scores, and the read models the API serves.
``keys`` (:class:`~churnrisk.store.keys.KeyStore`)
    API keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection, Engine

from churnrisk.store import schema
from churnrisk.store.activities import ActivityStore
from churnrisk.store.database import Database
from churnrisk.store.deliveries import DeliveryLog
from churnrisk.store.errors import (
    InvalidCursorError,
    InvalidQueryError,
    NoRunError,
    StaleCursorError,
    StoreError,
    StoreUnreachableError,
    mask_password,
)
from churnrisk.store.keys import SCOPES, ApiKey, KeyStore, hash_key
from churnrisk.store.queries import at_risk_filters, at_risk_select
from churnrisk.store.reads import ScoreReader
from churnrisk.store.records import AtRiskPage, AtRiskQuery, RunRecord
from churnrisk.store.runs import WRITE_BATCH, RunWriter
from churnrisk.store.schema import SCORE_COLUMNS


class ScoreStore:
    """Scoring runs, scores and API keys in a SQL database (SQLite or PostgreSQL).

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path/scores.db`` or
        ``postgresql+psycopg://user@host:5432/db`` (a schema other than ``public`` with
        ``?options=-csearch_path%3Dname``).

    Attributes
    ----------
    database : Database
        The engine and the schema's revision.
    writer : RunWriter
        Writes runs.
    reader : ScoreReader
        Reads runs, scores and the API's read models.
    keys : KeyStore
        API keys.
    activities : ActivityStore
        What customer success did about each account.
    deliveries : DeliveryLog
        Where each run's alerts went.

    Notes
    -----
    Opening a store connects to nothing and does not touch the schema: call
    :meth:`upgrade` (the CLI does) or :meth:`check_schema` (the service does). One store
    is safe to use from many threads.
    """

    def __init__(self, url: str) -> None:
        self.database = Database(url)
        self.writer = RunWriter(self.database)
        self.reader = ScoreReader(self.database)
        self.keys = KeyStore(self.database)
        self.activities = ActivityStore(self.database)
        self.deliveries = DeliveryLog(self.database)

    # ---- lifecycle and schema (Database)

    @property
    def url(self) -> str:
        """The store's URL with any password masked, for messages."""
        return self.database.url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and tools; the methods are the interface)."""
        return self.database.engine

    def __repr__(self) -> str:
        return f"ScoreStore({self.database.url!r})"

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection (the store can still be used afterwards)."""
        self.database.close()

    def ping(self) -> None:
        """Check that the database answers (:meth:`Database.ping`)."""
        self.database.ping()

    def head_revision(self) -> str:
        """Return the schema revision this version of churnrisk expects."""
        return self.database.head_revision()

    def revision(self) -> str | None:
        """Return the database's schema revision, or None when it has no schema yet."""
        return self.database.revision()

    def upgrade(self) -> None:
        """Create or migrate the schema to the newest revision (:meth:`Database.upgrade`)."""
        self.database.upgrade()

    def check_schema(self) -> None:
        """Raise :class:`StoreError` unless the schema is at head (see :class:`Database`)."""
        self.database.check_schema()

    # ---- runs (RunWriter)

    def write_run(self, run: RunRecord, scores: pd.DataFrame) -> None:
        """Write a run and all its score rows in one transaction (:meth:`RunWriter.write`).

        Batches of :data:`WRITE_BATCH` rows go in through :meth:`_insert_scores`.
        """
        self.writer.write(run, scores, batch_size=WRITE_BATCH, insert=self._insert_scores)

    def _insert_scores(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert one batch of score rows (:meth:`RunWriter.insert_scores`).

        The seam of :meth:`write_run`: a subclass or a test wraps it to fail midway.
        """
        self.writer.insert_scores(conn, rows)

    # ---- reads (ScoreReader)

    def current_run(self) -> RunRecord | None:
        """Return the current run (greatest ``(as_of, scored_at)``), or None."""
        return self.reader.current_run()

    def previous_run(self, as_of: date) -> RunRecord | None:
        """Return the run a new run as of ``as_of`` compares with, or None (see the reader)."""
        return self.reader.previous_run(as_of)

    def run(self, run_id: str) -> RunRecord | None:
        """Return one run by id, or None."""
        return self.reader.run(run_id)

    def runs(self, limit: int = 50) -> list[RunRecord]:
        """Return up to ``limit`` runs, newest (greatest position) first."""
        return self.reader.runs(limit)

    def trend(self, limit: int = 26) -> list[dict[str, Any]]:
        """Return the book's risk over the latest ``limit`` as-of dates, oldest first."""
        return self.reader.trend(limit)

    def totals(self, run_id: str) -> dict[str, Any] | None:
        """Return one run as a :meth:`trend` point (its tier totals), or None if unknown."""
        return self.reader.totals(run_id)

    def run_scores(self, run_id: str, columns: Sequence[str] = SCORE_COLUMNS) -> pd.DataFrame:
        """Return one run's score rows, ordered by ``account_id`` (see the reader)."""
        return self.reader.run_scores(run_id, columns)

    def at_risk(self, query: AtRiskQuery) -> AtRiskPage:
        """Return one page of the current run's at-risk list (:meth:`ScoreReader.at_risk`)."""
        return self.reader.at_risk(query)

    def renewals(
        self, days: int, *, owner: str | None = None, today: date | None = None
    ) -> dict[str, Any]:
        """Return the renewals of the next ``days`` days by tier (:meth:`ScoreReader.renewals`)."""
        return self.reader.renewals(days, owner=owner, today=today)

    def account_detail(
        self, account_id: str, *, current_run_id: str | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """Return an account's latest score and its history (:meth:`ScoreReader.account_detail`)."""
        return self.reader.account_detail(account_id, current_run_id=current_run_id)

    def summary(self, owner: str | None = None) -> dict[str, Any] | None:
        """Return the current run's headline figures and filter values, or None."""
        return self.reader.summary(owner)

    def last_before(
        self, until: Mapping[str, date], columns: Sequence[str], *, runs: int = 104
    ) -> pd.DataFrame:
        """Return each account's latest score row on or before its date (see the reader)."""
        return self.reader.last_before(until, columns, runs=runs)

    def mrr_rank(self, run_id: str, mrr: float) -> tuple[int, int]:
        """Return how many of a run's accounts have a larger MRR, and how many it has."""
        return self.reader.mrr_rank(run_id, mrr)

    def search(self, text: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Return the current run's accounts whose id or name contains ``text``."""
        return self.reader.search(text, limit=limit)

    def export_rows(
        self, updated_since: datetime | None, batch_size: int = 5000
    ) -> tuple[RunRecord | None, Iterator[list[dict[str, Any]]]]:
        """Return the current run and its rows in batches (:meth:`ScoreReader.export_rows`)."""
        return self.reader.export_rows(updated_since, batch_size)

    # ---- API keys (KeyStore)

    def create_key(self, name: str, scope: str) -> tuple[str, ApiKey]:
        """Create an API key; return its text and its record (:meth:`KeyStore.create_key`)."""
        return self.keys.create_key(name, scope)

    def verify_key(self, key: str) -> ApiKey | None:
        """Return the record of a valid, unrevoked key, else None (:meth:`KeyStore.verify_key`)."""
        return self.keys.verify_key(key)

    def list_keys(self) -> list[ApiKey]:
        """Return every key's record (revoked ones included), oldest first."""
        return self.keys.list_keys()

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; True when an active key was revoked, False if unknown or revoked."""
        return self.keys.revoke_key(key_id)


__all__ = [
    "SCOPES",
    "WRITE_BATCH",
    "ApiKey",
    "AtRiskPage",
    "AtRiskQuery",
    "InvalidCursorError",
    "InvalidQueryError",
    "NoRunError",
    "RunRecord",
    "ScoreStore",
    "StaleCursorError",
    "StoreError",
    "StoreUnreachableError",
    "at_risk_filters",
    "at_risk_select",
    "hash_key",
    "mask_password",
    "schema",
]
