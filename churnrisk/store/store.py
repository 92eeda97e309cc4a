"""The score store: scoring runs, per-account scores and API keys in one SQL database.

SQLite file by default, PostgreSQL (``postgresql+psycopg://...``) by URL; SQLAlchemy 2
Core, one :class:`~sqlalchemy.engine.Engine` with a connection pool per store, safe to
share between threads (the API serves from a thread pool).

Runs are immutable once written: :meth:`ScoreStore.write_run` inserts a run and all its
rows in one transaction, so readers see a run whole or not at all, and a failed write
leaves the previous run current. A run's position is ``(as_of, scored_at)``; the current
run is the greatest, so a backfill of an older as-of date does not become current.

The schema is versioned with Alembic (``migrations/``, run by :meth:`ScoreStore.upgrade`,
no ``alembic.ini``); :meth:`ScoreStore.check_schema` tells a service that the schema is
missing or old instead of migrating silently.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import re
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import repeat
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from churnrisk.errors import ChurnRiskError, ConfigError, DataError
from churnrisk.store import schema
from churnrisk.store.schema import (
    JSON_COLUMNS,
    NULLABLE_DATES,
    NULLABLE_FLOATS,
    NULLABLE_TEXTS,
    SCORE_COLUMNS,
    VERSION_TABLE,
    api_keys,
    run_totals,
    score_runs,
    scores,
)

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

#: API key scopes: ``read`` for the ``/v1`` reads, ``admin`` for key management.
SCOPES: tuple[str, ...] = ("read", "admin")

#: Rows per INSERT batch of :meth:`ScoreStore.write_run`.
WRITE_BATCH = 10_000

_KEY_PREFIX = "crk_"
_KEY_ID_HEX = 16
_SQLITE_BUSY_TIMEOUT_MS = 10_000
_WRITE_OPTION = "churnrisk_write"
_SQLITE_WRITE_CACHE_KIB = 65_536


UNREACHABLE = "unreachable"
SCHEMA_MISSING = "schema missing: run `churnrisk store upgrade`"
SCHEMA_OLDER = "schema is older than this version: run `churnrisk store upgrade`"
SCHEMA_NEWER = "schema is newer than this version: upgrade churnrisk"
BAD_URL = "the configured store URL cannot be opened: the server log says why"
"""Public reasons (:attr:`StoreError.reason`): they name no URL, user, host, database or path."""


class StoreError(ChurnRiskError, RuntimeError):
    """The score store cannot be used: unreachable, schema missing or old, a failed write.

    The message says everything, the store's URL (password masked) and the database's own
    words: for the CLI and the server log. :attr:`reason` says why in words that name no
    URL, user, host, database or path: what a service may tell anyone.

    Parameters
    ----------
    message
        The whole story.
    reason
        The public reason (default :attr:`default_reason`).
    """

    default_reason: ClassVar[str] = "a request to the database failed"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason


class StoreUnreachableError(StoreError):
    """The database does not answer: connection refused, cut, timed out or not accepted."""

    default_reason = UNREACHABLE


class NoRunError(StoreError, LookupError):
    """The score store holds no scoring run yet."""


class InvalidQueryError(StoreError, ValueError):
    """An at-risk query that cannot be answered (unknown sort, limit below 1)."""


class InvalidCursorError(InvalidQueryError):
    """A pagination cursor that is not one this store issued."""


class StaleCursorError(StoreError):
    """A pagination cursor of a run that is no longer the current run."""


@dataclass(frozen=True)
class RunRecord:
    """One scoring run.

    Attributes
    ----------
    run_id
        uuid4 hex.
    as_of
        The day the scores are as of (features use data before it).
    scored_at
        When the run was scored, timezone-aware UTC.
    churn_version, clv_version
        Registered model versions of the churn and CLV models.
    model_run_id
        MLflow run id of the models' training run.
    accounts
        Number of accounts (score rows) in the run.
    tiers
        ``{tier: lowest probability}``, riskiest first; ``low_tier`` is below them all.
    previous_run_id
        The run before this one at write time, or None.
    source
        What was scored (e.g. the data path).
    """

    run_id: str
    as_of: date
    scored_at: datetime
    churn_version: str
    clv_version: str
    model_run_id: str
    accounts: int
    tiers: dict[str, float]
    low_tier: str
    previous_run_id: str | None
    source: str

    @property
    def tier_names(self) -> list[str]:
        """Every tier of the run, riskiest first (``low_tier`` last)."""
        return [*self.tiers, self.low_tier]

    def to_dict(self) -> dict[str, Any]:
        """Return the run as JSON-ready values (ISO 8601 date and timestamp)."""
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "scored_at": self.scored_at.isoformat(),
            "churn_version": self.churn_version,
            "clv_version": self.clv_version,
            "model_run_id": self.model_run_id,
            "accounts": self.accounts,
            "tiers": dict(self.tiers),
            "low_tier": self.low_tier,
            "previous_run_id": self.previous_run_id,
            "source": self.source,
        }


@dataclass(frozen=True)
class AtRiskQuery:
    """A page request of the at-risk list of the current run.

    Attributes
    ----------
    tiers
        Keep accounts in any of these tiers (empty: every tier).
    segment, plan, owner
        Keep accounts with exactly this value.
    min_probability
        Keep accounts with ``churn_probability >= min_probability``.
    min_mrr
        Keep accounts with ``mrr >= min_mrr``.
    sort
        Order, descending: ``probability`` (churn probability), ``mrr_at_risk``,
        ``clv`` (lifetime CLV) or ``change`` (probability change, accounts without a
        previous score last); ties by ``account_id`` ascending.
    limit
        Rows per page (at least 1).
    cursor
        ``next_cursor`` of the previous page, or None for the first page.
    """

    tiers: tuple[str, ...] = ()
    segment: str | None = None
    plan: str | None = None
    owner: str | None = None
    min_probability: float | None = None
    min_mrr: float | None = None
    sort: Literal["probability", "mrr_at_risk", "clv", "change"] = "probability"
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class AtRiskPage:
    """One page of the at-risk list.

    Attributes
    ----------
    run
        The run the rows come from (the current run).
    rows
        Score rows (every ``scores`` column, drivers decoded to lists), in query order.
    next_cursor
        Cursor of the next page, or None on the last page.
    total
        Rows matching the filters over all pages.
    """

    run: RunRecord
    rows: list[dict[str, Any]]
    next_cursor: str | None
    total: int


@dataclass(frozen=True)
class ApiKey:
    """An API key's public record (never its text or hash)."""

    key_id: str
    name: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None


_SORT_COLUMNS: dict[str, sa.Column[Any]] = {
    "probability": scores.c.churn_probability,
    "mrr_at_risk": scores.c.mrr_at_risk,
    "clv": scores.c.lifetime_clv,
    "change": scores.c.probability_change,
}
_RUN_ORDER = (score_runs.c.as_of.desc(), score_runs.c.scored_at.desc(), score_runs.c.run_id.desc())


def _newest_of_its_date(run: Any) -> sa.ColumnElement[bool]:
    """Return the predicate "``run`` is the newest run of its as-of date".

    A date scored again (a retry after a crash, a nightly run with no new data) replaces
    that date's scores: the older runs of the date stay stored, but no history, trend or
    comparison reads them.
    """
    other = score_runs.alias("newer")
    newer = sa.or_(
        other.c.scored_at > run.c.scored_at,
        sa.and_(other.c.scored_at == run.c.scored_at, other.c.run_id > run.c.run_id),
    )
    return ~sa.exists().where(other.c.as_of == run.c.as_of, newer)


_PREVIOUS = score_runs.alias("previous")
_ACCOUNT_ROWS = (
    sa.select(
        scores,
        score_runs.c.as_of,
        score_runs.c.scored_at,
        score_runs.c.churn_version,
        score_runs.c.clv_version,
        _PREVIOUS.c.as_of.label("previous_as_of"),
    )
    .join(score_runs, score_runs.c.run_id == scores.c.run_id)
    .outerjoin(_PREVIOUS, _PREVIOUS.c.run_id == score_runs.c.previous_run_id)
    .where(scores.c.account_id == sa.bindparam("account_id"), _newest_of_its_date(score_runs))
    .order_by(score_runs.c.as_of, score_runs.c.scored_at, score_runs.c.run_id)
)
"""One account's row in the newest run of each as-of date, oldest first (the detail page's
query, built once); ``previous_as_of`` is the as-of date of the run its change is against."""
_SQLITE_ANALYSIS_LIMIT = 1000
"""Rows SQLite's ANALYZE samples per index: enough for the planner, quick at any size."""
_HISTORY_COLUMNS = (
    "run_id",
    "as_of",
    "scored_at",
    "churn_probability",
    "risk_tier",
    "mrr",
    "mrr_at_risk",
    "lifetime_clv",
)


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


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def hash_key(key: str) -> str:
    """Return the SHA-256 hex digest of an API key's full text.

    A plain, unsalted SHA-256 is the right hash here: keys are 256-bit random secrets
    (``secrets.token_urlsafe(32)``), so there is no dictionary to attack and a slow
    password hash (bcrypt, scrypt) would only slow down every request. Lone surrogates
    (text no client can send as UTF-8, but a decoded header may hold) are hashed as
    their code points, so any text has a hash and simply matches no key.
    """
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _key_id_of(key: str) -> str | None:
    """Return the key id of a well-formed key text ``crk_<key_id>_<secret>``, else None."""
    if not isinstance(key, str) or len(key) > 200 or not key.startswith(_KEY_PREFIX):
        return None
    parts = key.split("_", 2)
    if len(parts) != 3 or not parts[2]:
        return None
    key_id = parts[1]
    if len(key_id) != _KEY_ID_HEX or any(c not in "0123456789abcdef" for c in key_id):
        return None
    return key_id


def _encode_cursor(run_id: str, sort: str, value: float | None, account_id: str) -> str:
    raw = orjson.dumps({"run_id": run_id, "sort": sort, "value": value, "account_id": account_id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[str, float | None, str]:
    """Return ``(run_id, value, account_id)`` of a cursor, or raise InvalidCursorError."""
    bad = InvalidCursorError(
        "the cursor is not one this API made for this sort: pass the previous page's"
        " `next_cursor` unchanged, with the same `sort`, or leave `cursor` out to start"
        " from the first page"
    )
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as err:
        raise bad from err
    if not isinstance(data, dict) or set(data) != {"run_id", "sort", "value", "account_id"}:
        raise bad
    run_id, value, account_id = data["run_id"], data["value"], data["account_id"]
    if not isinstance(run_id, str) or not isinstance(account_id, str) or data["sort"] != sort:
        raise bad
    if any(c < " " or c == "\x7f" for c in account_id):  # no id has one; PostgreSQL refuses NUL
        raise bad
    if value is None:
        if sort != "change":
            raise bad
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise bad
    return run_id, (None if value is None else float(value)), account_id


def _run_record(row: Mapping[Any, Any]) -> RunRecord:
    tiers = {str(k): float(v) for k, v in dict(row["tiers"]).items()}
    return RunRecord(
        run_id=row["run_id"],
        as_of=row["as_of"],
        scored_at=row["scored_at"],
        churn_version=row["churn_version"],
        clv_version=row["clv_version"],
        model_run_id=row["model_run_id"],
        accounts=int(row["accounts"]),
        tiers=dict(sorted(tiers.items(), key=lambda kv: -kv[1])),
        low_tier=row["low_tier"],
        previous_run_id=row["previous_run_id"],
        source=row["source"],
    )


def _api_key(row: Mapping[Any, Any]) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        name=row["name"],
        scope=row["scope"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


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


def _with_totals(conn: Connection, runs: list[RunRecord]) -> list[dict[str, Any]]:
    """Return each run with its ``run_totals``, in the order given (see ``trend``)."""
    ids = [r.run_id for r in runs]
    totals = conn.execute(sa.select(run_totals).where(run_totals.c.run_id.in_(ids))).all()
    by_run: dict[str, dict[str, Any]] = {}
    for total in totals:
        by_run.setdefault(total.run_id, {})[total.risk_tier] = total
    points = []
    for run in runs:
        found = by_run.get(run.run_id, {})
        tiers: list[dict[str, Any]] = []
        for name in run.tier_names:
            row = found.get(name)
            tiers.append(
                {
                    "tier": name,
                    "accounts": int(row.accounts) if row else 0,
                    "mrr": float(row.mrr) if row else 0.0,
                    "mrr_at_risk": float(row.mrr_at_risk) if row else 0.0,
                }
            )
        points.append(
            {
                "run": run,
                "accounts": sum(int(t["accounts"]) for t in tiers),
                "mrr": math.fsum(float(t["mrr"]) for t in tiers),
                "mrr_at_risk": math.fsum(float(t["mrr_at_risk"]) for t in tiers),
                "tiers": tiers,
            }
        )
    return points


def _reason(err: BaseException) -> str:
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def mask_password(url: str) -> str:
    """Return ``url`` with the password of its ``user:password@`` part shown as ``***``.

    >>> mask_password("postgresql+psycopg://app:s3cret@db:5432/scores")
    'postgresql+psycopg://app:***@db:5432/scores'
    """
    return re.sub(r"(//[^/:@]*:)[^@]*@", r"\1***@", url)


def _unreachable(err: sa.exc.SQLAlchemyError) -> bool:
    """Whether ``err`` is the database not answering rather than a statement failing.

    SQLAlchemy marks a connection that broke under a statement as invalidated, and an
    error raised while connecting carries no statement.
    """
    if isinstance(err, sa.exc.DBAPIError):
        return err.connection_invalidated or err.statement is None
    return isinstance(err, sa.exc.TimeoutError)  # no pooled connection came free in time


def at_risk_filters(query: AtRiskQuery, run_id: str) -> list[sa.ColumnElement[bool]]:
    """Return the WHERE clauses of an at-risk query over one run (without the cursor)."""
    where: list[sa.ColumnElement[bool]] = [scores.c.run_id == run_id]
    if query.tiers:
        where.append(scores.c.risk_tier.in_(list(query.tiers)))
    for column, value in (
        (scores.c.segment, query.segment),
        (scores.c.plan, query.plan),
        (scores.c.owner, query.owner),
    ):
        if value is not None:
            where.append(column == value)
    if query.min_probability is not None:
        where.append(scores.c.churn_probability >= query.min_probability)
    if query.min_mrr is not None:
        where.append(scores.c.mrr >= query.min_mrr)
    return where


def at_risk_select(
    query: AtRiskQuery,
    run_id: str,
    *,
    dialect: str,
    after: tuple[float | None, str] | None = None,
) -> sa.Select[Any]:
    """Return the SELECT of one at-risk page (``query.limit + 1`` rows, to see if more follow).

    The order is the sort column descending, then ``account_id`` ascending: the order of
    the ``ix_scores_run_*`` indexes, so the database walks the index from the cursor
    position and stops after the page. ``after`` is the ``(value, account_id)`` of the
    previous page's last row.
    """
    if query.sort not in _SORT_COLUMNS:
        raise InvalidQueryError(
            f"sort {query.sort!r} is not one of {', '.join(_SORT_COLUMNS)}: pick one of those"
        )
    if query.limit < 1:
        raise InvalidQueryError(f"limit {query.limit} is below 1: ask for at least one row")
    column = _SORT_COLUMNS[query.sort]
    where = at_risk_filters(query, run_id)
    if after is not None:
        value, account_id = after
        if value is None:
            where.append(sa.and_(column.is_(None), scores.c.account_id > account_id))
        else:
            # ``column <= value`` bounds the index range; the rest picks up the ties.
            seek = sa.and_(
                column <= value, sa.or_(column < value, scores.c.account_id > account_id)
            )
            where.append(sa.or_(seek, column.is_(None)) if column.nullable else seek)
    descending = column.desc()
    if column.nullable and dialect == "postgresql":
        descending = descending.nulls_last()  # SQLite puts NULLs last in DESC already
    return (
        sa.select(scores)
        .where(*where)
        .order_by(descending, scores.c.account_id.asc())
        .limit(query.limit + 1)
    )


class ScoreStore:
    """Scoring runs, scores and API keys in a SQL database (SQLite or PostgreSQL).

    Parameters
    ----------
    url
        SQLAlchemy URL: ``sqlite:///path/scores.db`` or
        ``postgresql+psycopg://user@host:5432/db`` (a schema other than ``public`` with
        ``?options=-csearch_path%3Dname``).

    Notes
    -----
    Opening a store connects to nothing and does not touch the schema: call
    :meth:`upgrade` (the CLI does) or :meth:`check_schema` (the service does). SQLite
    connections run with ``journal_mode=WAL`` (readers never wait for the writer),
    ``foreign_keys=ON``, ``synchronous=NORMAL`` and a 10-second busy timeout, and every
    transaction starts with an explicit ``BEGIN`` so reads are consistent snapshots.
    One store is safe to use from many threads.
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

    # ---- lifecycle

    @property
    def url(self) -> str:
        """The store's URL with any password masked, for messages."""
        return self._masked

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and tools; the methods are the interface)."""
        return self._engine

    def __repr__(self) -> str:
        return f"ScoreStore({self._masked!r})"

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection (the store can still be used afterwards)."""
        self._engine.dispose()

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
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

        with self._errors("read the schema revision"), self._engine.connect() as conn:
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
            with self._errors("migrate the schema"), self._writer.begin() as conn:
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

    # ---- runs

    def write_run(self, run: RunRecord, scores: pd.DataFrame) -> None:
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
        action = f"write run {run.run_id} (nothing was written)"
        with self._errors(action), self._writer.begin() as conn:
            if self._sqlite:  # room for the index pages a large write touches
                conn.exec_driver_sql(f"PRAGMA cache_size=-{_SQLITE_WRITE_CACHE_KIB}")
            try:
                conn.execute(score_runs.insert(), [run_row])
                for start in range(0, len(rows), WRITE_BATCH):
                    self._insert_scores(conn, rows[start : start + WRITE_BATCH])
                totals = _tier_totals(run.run_id, rows)
                if totals:
                    conn.execute(run_totals.insert(), totals)
            finally:
                if self._sqlite:
                    conn.exec_driver_sql("PRAGMA cache_size=-2000")  # SQLite's default
        self._refresh_statistics()

    def _refresh_statistics(self) -> None:
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

    def _insert_scores(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
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

    def current_run(self) -> RunRecord | None:
        """Return the current run (greatest ``(as_of, scored_at)``), or None."""
        with self._errors("read the current run"), self._engine.connect() as conn:
            return self._current(conn)

    def _current(self, conn: Connection) -> RunRecord | None:
        row = conn.execute(sa.select(score_runs).order_by(*_RUN_ORDER).limit(1)).first()
        return None if row is None else _run_record(row._mapping)

    def previous_run(self, as_of: date) -> RunRecord | None:
        """Return the run a new run as of ``as_of`` compares with, or None.

        It is the newest run of the latest as-of date *before* ``as_of``. A run of the
        same date is not a previous run: a date scored again replaces its scores, so
        comparing with them would report no change at all.
        """
        stmt = (
            sa.select(score_runs).where(score_runs.c.as_of < as_of).order_by(*_RUN_ORDER).limit(1)
        )
        with self._errors("read the previous run"), self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _run_record(row._mapping)

    def run(self, run_id: str) -> RunRecord | None:
        """Return one run by id, or None."""
        stmt = sa.select(score_runs).where(score_runs.c.run_id == run_id)
        with self._errors(f"read run {run_id}"), self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _run_record(row._mapping)

    def runs(self, limit: int = 50) -> list[RunRecord]:
        """Return up to ``limit`` runs, newest (greatest position) first."""
        stmt = sa.select(score_runs).order_by(*_RUN_ORDER).limit(limit)
        with self._errors("list runs"), self._engine.connect() as conn:
            return [_run_record(r._mapping) for r in conn.execute(stmt)]

    def trend(self, limit: int = 26) -> list[dict[str, Any]]:
        """Return the book's risk over the latest ``limit`` as-of dates, oldest first.

        One point per as-of date: its latest-scored run (a re-scored date counts once,
        with its newest scores). Each point is ``{"run": RunRecord, "accounts", "mrr",
        "mrr_at_risk", "tiers": [{"tier", "accounts", "mrr", "mrr_at_risk"}]}`` with every
        tier of the run, riskiest first, empty ones at 0. Read from ``run_totals``: a few
        rows per run, whatever the number of accounts.
        """
        stmt = (
            sa.select(score_runs)
            .where(_newest_of_its_date(score_runs))
            .order_by(score_runs.c.as_of.desc())
            .limit(limit)
        )
        with self._errors("read the risk trend"), self._engine.connect() as conn:
            runs = [_run_record(r._mapping) for r in conn.execute(stmt)]
            return _with_totals(conn, runs[::-1])

    def totals(self, run_id: str) -> dict[str, Any] | None:
        """Return one run as a :meth:`trend` point (its tier totals), or None if unknown."""
        stmt = sa.select(score_runs).where(score_runs.c.run_id == run_id)
        with self._errors(f"read the totals of run {run_id}"), self._engine.connect() as conn:
            runs = [_run_record(r._mapping) for r in conn.execute(stmt)]
            points = _with_totals(conn, runs)
        return points[0] if points else None

    def run_scores(self, run_id: str, columns: Sequence[str] = SCORE_COLUMNS) -> pd.DataFrame:
        """Return one run's score rows, ordered by ``account_id``.

        Parameters
        ----------
        run_id
            The run.
        columns
            ``scores`` columns to read (default: :data:`SCORE_COLUMNS`). Float columns are
            ``float64`` with NaN for NULL; driver columns hold lists.

        Raises
        ------
        DataError
            An unknown column.
        StoreError
            No such run.
        """
        names = list(columns)
        unknown = [c for c in names if c not in scores.c]
        if unknown:
            raise DataError(
                f"scores has no column {unknown[0]!r}; columns are {', '.join(scores.c.keys())}"
            )
        stmt = (
            sa.select(*(scores.c[c] for c in names))
            .where(scores.c.run_id == run_id)
            .order_by(scores.c.account_id)
        )
        with self._errors(f"read the scores of run {run_id}"), self._engine.connect() as conn:
            exists = conn.execute(
                sa.select(score_runs.c.run_id).where(score_runs.c.run_id == run_id)
            ).first()
            if exists is None:
                raise StoreError(f"score store {self._masked} has no run {run_id!r}")
            records = [tuple(r) for r in conn.execute(stmt)]
        frame = pd.DataFrame.from_records(records, columns=names)
        for name in names:
            if isinstance(scores.c[name].type, sa.Float):
                frame[name] = frame[name].astype("float64")
        return frame

    # ---- reads for the API

    def at_risk(self, query: AtRiskQuery) -> AtRiskPage:
        """Return one page of the current run's at-risk list.

        Filters are AND-ed (``tiers``: any of them). Rows are sorted descending by the
        sort column, ties by ``account_id`` ascending, and paged by keyset: the cursor
        holds the last row's sort value and account id, so a page costs an index seek
        whatever its depth.

        Raises
        ------
        NoRunError
            The store holds no run yet.
        InvalidCursorError
            A cursor that is not one of ours, or issued for another sort.
        StaleCursorError
            A cursor of a run that is no longer current (start again from page one).
        InvalidQueryError
            An unknown sort or a limit below 1.
        """
        after_cursor = None if query.cursor is None else _decode_cursor(query.cursor, query.sort)
        with self._errors("read the at-risk list"), self._engine.connect() as conn:
            run = self._current(conn)
            if run is None:
                raise NoRunError(_no_run_message())
            after: tuple[float | None, str] | None = None
            if after_cursor is not None:
                cursor_run, value, account_id = after_cursor
                if cursor_run != run.run_id:
                    raise StaleCursorError(
                        f"the cursor belongs to run {cursor_run}, but a newer run,"
                        f" {run.run_id}, has landed since: start again from the first page"
                        " (leave `cursor` out)"
                    )
                after = (value, account_id)
            stmt = at_risk_select(query, run.run_id, dialect=self._engine.dialect.name, after=after)
            filters = at_risk_filters(query, run.run_id)
            total = (
                run.accounts  # every row of the run: no need to count
                if len(filters) == 1
                else conn.execute(
                    sa.select(sa.func.count()).select_from(scores).where(*filters)
                ).scalar_one()
            )
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
        next_cursor = None
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            last = rows[-1]
            column = _SORT_COLUMNS[query.sort].name
            next_cursor = _encode_cursor(run.run_id, query.sort, last[column], last["account_id"])
        return AtRiskPage(run=run, rows=rows, next_cursor=next_cursor, total=int(total))

    def account_detail(
        self, account_id: str, *, current_run_id: str | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """Return an account's latest score and its history, from one query.

        What the account page needs, in one round trip. The history has one point per
        scored as-of date, from the newest run of that date (a date scored again
        replaces its point, it does not add one), oldest first; the latest point is
        the score.

        Parameters
        ----------
        account_id
            The account.
        current_run_id
            The current run's id when the caller knows it (the service does), which
            saves looking it up; ``current`` in the row compares against it.

        Returns
        -------
        tuple of (dict, list of dict) or None
            None when the account was never scored. Otherwise the latest row: every
            ``scores`` column plus its run's ``as_of`` (date), ``scored_at`` (aware UTC
            datetime), ``churn_version``, ``clv_version``, ``previous_as_of`` (the as-of
            date of the run its change is measured against, or None) and ``current``
            (True when the row belongs to the current run); and the history, items of
            ``run_id``, ``as_of``, ``scored_at``, ``churn_probability``, ``risk_tier``,
            ``mrr``, ``mrr_at_risk``, ``lifetime_clv``.
        """
        with self._errors(f"read account {account_id}"), self._engine.connect() as conn:
            rows = [
                dict(r._mapping) for r in conn.execute(_ACCOUNT_ROWS, {"account_id": account_id})
            ]
            if not rows:
                return None
            if current_run_id is None:
                current = self._current(conn)
                current_run_id = current.run_id if current is not None else None
        latest = rows[-1]
        latest["current"] = latest["run_id"] == current_run_id
        history = [{k: row[k] for k in _HISTORY_COLUMNS} for row in rows]
        return latest, history

    def summary(self) -> dict[str, Any] | None:
        """Return the current run's headline figures and filter values, or None without runs.

        Keys: ``run`` (:meth:`RunRecord.to_dict`), ``accounts``, ``mrr``, ``mrr_at_risk``,
        ``tiers`` (``[{"tier", "accounts", "mrr_at_risk"}]`` riskiest first, every tier of
        the run including empty ones), and the distinct non-null ``segments``, ``plans``
        and ``owners``, sorted.
        """
        s = scores.c
        # One pass over the run (rows are wide: drivers are JSON), grouped finely enough
        # to give every figure; the groups are few (tiers x segments x plans x owners).
        stmt = sa.select(
            s.risk_tier,
            s.segment,
            s.plan,
            s.owner,
            sa.func.count(),
            sa.func.sum(s.mrr),
            sa.func.sum(s.mrr_at_risk),
        ).group_by(s.risk_tier, s.segment, s.plan, s.owner)
        with self._errors("read the summary"), self._engine.connect() as conn:
            run = self._current(conn)
            if run is None:
                return None
            groups = conn.execute(stmt.where(s.run_id == run.run_id)).all()
        tier_accounts: dict[str, int] = dict.fromkeys(run.tier_names, 0)
        tier_at_risk: dict[str, list[float]] = {t: [] for t in run.tier_names}
        mrr: list[float] = []
        segments, plans, owners = set(), set(), set()
        for tier, segment, plan, owner, count, group_mrr, group_at_risk in groups:
            tier_accounts[tier] = tier_accounts.get(tier, 0) + int(count)
            tier_at_risk.setdefault(tier, []).append(float(group_at_risk))
            mrr.append(float(group_mrr))
            segments.add(segment)
            plans.add(plan)
            owners.add(owner)
        return {
            "run": run.to_dict(),
            "accounts": sum(tier_accounts.values()),
            "mrr": math.fsum(mrr),
            "mrr_at_risk": math.fsum(math.fsum(v) for v in tier_at_risk.values()),
            "tiers": [
                {"tier": t, "accounts": tier_accounts[t], "mrr_at_risk": math.fsum(tier_at_risk[t])}
                for t in tier_accounts
            ],
            "segments": sorted(v for v in segments if v is not None),
            "plans": sorted(v for v in plans if v is not None),
            "owners": sorted(v for v in owners if v is not None),
        }

    def export_rows(
        self, updated_since: datetime | None, batch_size: int = 5000
    ) -> tuple[RunRecord | None, Iterator[list[dict[str, Any]]]]:
        """Return the current run and its rows in batches, for a CRM sync.

        Parameters
        ----------
        updated_since
            Export only when the current run was scored after this instant (naive means
            UTC); None exports the current run whatever its time.
        batch_size
            Rows per batch. The rows are streamed (a server-side cursor on PostgreSQL),
            so a large export never sits in memory.

        Returns
        -------
        run, batches
            ``(None, empty)`` when there is no run, or when the current run is not newer
            than ``updated_since`` (nothing to sync: keep the same cursor). Otherwise the
            current run and an iterator of lists of rows (every ``scores`` column), ordered
            by ``account_id``. The iterator opens its connection on first use.
        """
        if batch_size < 1:
            raise InvalidQueryError(f"batch_size {batch_size} is below 1")
        run = self.current_run()
        if run is None or (updated_since is not None and run.scored_at <= _utc(updated_since)):
            return None, iter(())
        return run, self._export_batches(run.run_id, batch_size)

    def _export_batches(self, run_id: str, batch_size: int) -> Iterator[list[dict[str, Any]]]:
        stmt = sa.select(scores).where(scores.c.run_id == run_id).order_by(scores.c.account_id)
        with self._errors(f"export run {run_id}"), self._engine.connect() as conn:
            result = conn.execution_options(yield_per=batch_size).execute(stmt)
            for part in result.partitions():
                yield [dict(r._mapping) for r in part]

    # ---- API keys

    def create_key(self, name: str, scope: str) -> tuple[str, ApiKey]:
        """Create an API key; return its text (shown once, never stored) and its record.

        The key text is ``crk_<key_id>_<secret>``: ``key_id`` is 16 random hex digits
        (public, shown in listings), ``secret`` is ``secrets.token_urlsafe(32)``. Only
        :func:`hash_key` of the text is stored.
        """
        if scope not in SCOPES:
            raise ConfigError(f"API key scope {scope!r} is not one of {', '.join(SCOPES)}")
        if not name.strip():
            raise ConfigError("an API key needs a name (who or what uses it)")
        key_id = secrets.token_hex(_KEY_ID_HEX // 2)
        key = f"{_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(
            key_id=key_id,
            name=name.strip(),
            scope=scope,
            created_at=datetime.now(UTC),
            revoked_at=None,
        )
        with self._errors("create an API key"), self._writer.begin() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=record.key_id,
                    name=record.name,
                    scope=record.scope,
                    key_hash=hash_key(key),
                    created_at=record.created_at,
                    revoked_at=None,
                )
            )
        return key, record

    def verify_key(self, key: str) -> ApiKey | None:
        """Return the record of a valid, unrevoked key; None if unknown, malformed or revoked.

        The stored hash is compared with :func:`hmac.compare_digest`.
        """
        key_id = _key_id_of(key)
        if key_id is None:
            return None
        stmt = sa.select(api_keys).where(api_keys.c.key_id == key_id)
        with self._errors("verify an API key"), self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        found = row._mapping
        if not hmac.compare_digest(found["key_hash"], hash_key(key)):
            return None
        if found["revoked_at"] is not None:
            return None
        return _api_key(found)

    def list_keys(self) -> list[ApiKey]:
        """Return every key's record (revoked ones included), oldest first."""
        stmt = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        with self._errors("list API keys"), self._engine.connect() as conn:
            return [_api_key(r._mapping) for r in conn.execute(stmt)]

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; True when an active key was revoked, False if unknown or revoked."""
        stmt = (
            api_keys.update()
            .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
        with self._errors(f"revoke API key {key_id}"), self._writer.begin() as conn:
            return conn.execute(stmt).rowcount == 1


def _no_run_message() -> str:
    return "no scoring run yet: run `churnrisk score DATA`"


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


__all__ = [
    "SCOPES",
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
    "at_risk_select",
    "hash_key",
    "mask_password",
    "schema",
]
