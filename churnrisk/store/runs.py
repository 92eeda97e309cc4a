"""Writing a scoring run: its record, its score rows and its per-tier totals, in one transaction.

Runs are immutable once written: :meth:`RunWriter.write` inserts a run and all its rows
in one transaction, so readers see a run whole or not at all, and a failed write leaves
the previous run current.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from churnrisk.errors import DataError
from churnrisk.store.database import Database, _json_dumps
from churnrisk.store.records import RunRecord, _utc
from churnrisk.store.schema import (
    JSON_COLUMNS,
    NULLABLE_DATES,
    NULLABLE_FLOATS,
    NULLABLE_TEXTS,
    SCORE_COLUMNS,
    run_totals,
    score_runs,
    scores,
)

#: Rows per INSERT batch of :meth:`RunWriter.write`.
WRITE_BATCH = 10_000

_SQLITE_WRITE_CACHE_KIB = 65_536


def _float_column(frame: pd.DataFrame, column: str, *, nullable: bool) -> list[float | None]:
    try:
        values = pd.to_numeric(frame[column]).to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise DataError(f"scores column {column!r} is not numeric: {err}") from err
    missing = np.isnan(values)
    if np.isinf(values).any():
        raise DataError(f"scores column {column!r} holds an infinite value; scores are finite")
    out: list[float | None] = values.tolist()
    if missing.any():
        if not nullable:
            first = frame["account_id"].iloc[int(np.flatnonzero(missing)[0])]
            raise DataError(
                f"scores column {column!r} is missing for {int(missing.sum())} account(s) "
                f"(first: {first!r}); only {', '.join(NULLABLE_FLOATS)} may be missing"
            )
        for i in np.flatnonzero(missing):
            out[i] = None
    return out


def _text_column(frame: pd.DataFrame, column: str, *, nullable: bool) -> list[str | None]:
    series = frame[column]
    present = series.notna().to_numpy()
    if not nullable and not present.all():
        raise DataError(
            f"scores column {column!r} is missing for {int((~present).sum())} account(s); "
            "it is required"
        )
    values = series.astype(object).tolist()
    return [str(v) if ok else None for v, ok in zip(values, present, strict=True)]


def _date_column(frame: pd.DataFrame, column: str) -> list[str | None]:
    """Return a nullable date column as ISO text (``YYYY-MM-DD``), how SQLite keeps dates.

    PostgreSQL's ``COPY`` reads the same text into its ``date`` column.
    """
    try:
        values = pd.to_datetime(frame[column])
    except (TypeError, ValueError) as err:
        raise DataError(f"scores column {column!r} is not a date: {err}") from err
    return [None if pd.isna(v) else v.date().isoformat() for v in values]


def _json_column(frame: pd.DataFrame, column: str) -> list[Any]:
    return [
        [] if v is None or (isinstance(v, float) and math.isnan(v)) else v
        for v in frame[column].tolist()
    ]


#: Column order of the tuples :func:`_score_rows` returns.
_ROW_KEYS: tuple[str, ...] = ("run_id", *SCORE_COLUMNS)
_JSON_POSITIONS: tuple[int, ...] = tuple(_ROW_KEYS.index(c) for c in JSON_COLUMNS)


_SQLITE_INSERT = (
    f"INSERT INTO scores ({', '.join(_ROW_KEYS)}) VALUES ({', '.join('?' for _ in _ROW_KEYS)})"
)


def _serialize_json(row: tuple[Any, ...]) -> tuple[Any, ...]:
    values = list(row)
    for i in _JSON_POSITIONS:
        values[i] = _json_dumps(values[i])
    return tuple(values)


def _score_rows(run: RunRecord, frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Validate a run's scores frame and return its rows as tuples in ``_ROW_KEYS`` order."""
    missing = [c for c in SCORE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"scores frame of run {run.run_id} is missing column {missing[0]!r}"
            f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}; "
            f"a run's scores have the columns {', '.join(SCORE_COLUMNS)}"
        )
    if run.accounts != len(frame):
        raise DataError(
            f"run {run.run_id} says accounts={run.accounts} but its scores frame has "
            f"{len(frame)} rows; set accounts to the number of rows"
        )
    account_ids = _text_column(frame, "account_id", nullable=False)
    duplicated = frame["account_id"].duplicated()
    if duplicated.any():
        dupes = sorted({str(v) for v in frame.loc[duplicated, "account_id"]})
        raise DataError(
            f"scores frame of run {run.run_id} has {int(duplicated.sum())} duplicate "
            f"account_id row(s) ({', '.join(dupes[:5])}); a run scores each account once"
        )
    tiers = _text_column(frame, "risk_tier", nullable=False)
    unknown = sorted({t for t in tiers if t is not None} - set(run.tier_names))
    if unknown:
        raise DataError(
            f"scores frame of run {run.run_id} has risk_tier value(s) {', '.join(unknown)} "
            f"that are not tiers of the run ({', '.join(run.tier_names)})"
        )
    columns: list[list[Any]] = []
    for column in SCORE_COLUMNS:
        if column == "account_id":
            columns.append(account_ids)
        elif column == "risk_tier":
            columns.append(tiers)
        elif column in JSON_COLUMNS:
            columns.append(_json_column(frame, column))
        elif column in NULLABLE_TEXTS:
            columns.append(_text_column(frame, column, nullable=True))
        elif column in NULLABLE_DATES:
            columns.append(_date_column(frame, column))
        else:
            columns.append(_float_column(frame, column, nullable=column in NULLABLE_FLOATS))
    return list(zip(repeat(run.run_id, len(frame)), *columns, strict=False))


def _tier_totals(run_id: str, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Return the ``run_totals`` rows of a run: accounts, MRR and MRR at risk per tier.

    Sums are exactly rounded (``math.fsum``), so they do not depend on the row order.
    """
    tier, mrr, at_risk = (_ROW_KEYS.index(k) for k in ("risk_tier", "mrr", "mrr_at_risk"))
    groups: dict[str, tuple[list[float], list[float]]] = {}
    for row in rows:
        values = groups.setdefault(row[tier], ([], []))
        values[0].append(row[mrr])
        values[1].append(row[at_risk])
    return [
        {
            "run_id": run_id,
            "risk_tier": name,
            "accounts": len(mrrs),
            "mrr": math.fsum(mrrs),
            "mrr_at_risk": math.fsum(risks),
        }
        for name, (mrrs, risks) in groups.items()
    ]


InsertScores = Callable[[Connection, list[tuple[Any, ...]]], None]
"""Inserts one batch of score rows (tuples in ``_ROW_KEYS`` order) in a transaction."""


class RunWriter:
    """Writes scoring runs into a score store's database.

    Parameters
    ----------
    database
        The store's database (schema at head).
    """

    def __init__(self, database: Database) -> None:
        self._database = database

    def write(
        self,
        run: RunRecord,
        scores: pd.DataFrame,
        *,
        batch_size: int = WRITE_BATCH,
        insert: InsertScores | None = None,
    ) -> None:
        """Write a run and all its score rows in one transaction.

        Parameters
        ----------
        run
            The run's record; ``run.accounts`` must equal the number of rows.
        scores
            One row per account with the columns :data:`SCORE_COLUMNS` (extra columns are
            ignored). NaN in ``previous_probability`` / ``probability_change`` (and
            missing names, segments, plans, owners) is stored as NULL; missing driver
            lists as ``[]``.
        batch_size
            Score rows per INSERT batch.
        insert
            How one batch goes in (default :meth:`insert_scores`): the store passes its
            own hook here, so a subclass or a test can wrap it.

        Raises
        ------
        DataError
            A column is missing, an account appears twice, a required value is missing or
            not finite, a tier is not one of the run's tiers.
        StoreError
            The database refused the write (e.g. the run id exists already). Nothing of
            the run is written and the previous run stays current.
        """
        rows = _score_rows(run, scores)
        run_row = {
            "run_id": run.run_id,
            "as_of": run.as_of,
            "scored_at": _utc(run.scored_at),
            "churn_version": run.churn_version,
            "clv_version": run.clv_version,
            "model_run_id": run.model_run_id,
            "accounts": run.accounts,
            "tiers": dict(run.tiers),
            "low_tier": run.low_tier,
            "previous_run_id": run.previous_run_id,
            "source": run.source,
        }
        insert_batch = self.insert_scores if insert is None else insert
        database = self._database
        action = f"write run {run.run_id} (nothing was written)"
        with database.errors(action), database.writer.begin() as conn:
            if database.sqlite:  # room for the index pages a large write touches
                conn.exec_driver_sql(f"PRAGMA cache_size=-{_SQLITE_WRITE_CACHE_KIB}")
            try:
                conn.execute(score_runs.insert(), [run_row])
                for start in range(0, len(rows), batch_size):
                    insert_batch(conn, rows[start : start + batch_size])
                totals = _tier_totals(run.run_id, rows)
                if totals:
                    conn.execute(run_totals.insert(), totals)
            finally:
                if database.sqlite:
                    conn.exec_driver_sql("PRAGMA cache_size=-2000")  # SQLite's default
        database.refresh_statistics()

    def insert_scores(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert a batch of score rows (tuples in ``_ROW_KEYS`` order) in ``conn``'s transaction.

        The driver gets the rows with the drivers already serialized, skipping the per-value
        processing of a Core INSERT (a third of the time of a 100,000-row write):
        PostgreSQL as a ``COPY ... FROM STDIN`` on the transaction's own connection (twice
        as fast as a pipelined executemany), SQLite as one ``executemany``.
        """
        dialect = conn.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            records = [dict(zip(_ROW_KEYS, row, strict=True)) for row in rows]
            for record in records:  # a Core INSERT binds dates, not their ISO text
                for column in NULLABLE_DATES:
                    text = record[column]
                    record[column] = None if text is None else date.fromisoformat(text)
            conn.execute(scores.insert(), records)
            return
        serialized = [_serialize_json(row) for row in rows]
        if dialect == "sqlite":
            conn.exec_driver_sql(_SQLITE_INSERT, serialized)
            return
        copy_sql = f"COPY scores ({', '.join(_ROW_KEYS)}) FROM STDIN"
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[union-attr]
            for row in serialized:
                copy.write_row(row)
