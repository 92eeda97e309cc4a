"""The read models' SQL: the at-risk page with its keyset cursor, and an account's rows.

A run's position is ``(as_of, scored_at)``; the current run is the greatest, so a
backfill of an older as-of date does not become current.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from churnrisk.store.errors import InvalidCursorError, InvalidQueryError
from churnrisk.store.records import AtRiskQuery
from churnrisk.store.schema import score_runs, scores

_SORT_COLUMNS: dict[str, sa.Column[Any]] = {
    "probability": scores.c.churn_probability,
    "mrr_at_risk": scores.c.mrr_at_risk,
    "clv": scores.c.lifetime_clv,
    "change": scores.c.probability_change,
    "renewal": scores.c.days_to_renewal,
}
_ASCENDING = frozenset({"renewal"})
"""Sorts that are ascending (soonest renewal first); the others are descending."""
IDS_PER_QUERY = 500
"""Ids per ``IN`` list when rows are read by id (well below every database's limit)."""


def id_chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    """Yield ``ids`` in lists of at most :data:`IDS_PER_QUERY`, in order."""
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield list(ids[start : start + IDS_PER_QUERY])


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
        if not _SORT_COLUMNS[sort].nullable:
            raise bad
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise bad
    return run_id, (None if value is None else float(value)), account_id


def at_risk_filters(
    query: AtRiskQuery, run_id: str, *, hidden: Sequence[str] = ()
) -> list[sa.ColumnElement[bool]]:
    """Return the WHERE clauses of an at-risk query over one run (without the cursor).

    ``hidden`` are accounts left out whatever the filters (the snoozed ones).
    """
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
    if query.renewing_within is not None:
        where.append(scores.c.days_to_renewal.between(0, query.renewing_within))
    if hidden:
        where.append(scores.c.account_id.not_in(list(hidden)))
    return where


def at_risk_select(
    query: AtRiskQuery,
    run_id: str,
    *,
    dialect: str,
    after: tuple[float | None, str] | None = None,
    hidden: Sequence[str] = (),
    nulls: bool = False,
    limit: int | None = None,
) -> sa.Select[Any]:
    """Return the SELECT of one at-risk page (``query.limit + 1`` rows, to see if more follow).

    The order is the sort column descending, then ``account_id`` ascending: the order of
    the ``ix_scores_run_*`` indexes, so the database walks the index from the cursor
    position and stops after the page. ``after`` is the ``(value, account_id)`` of the
    previous page's last row.

    The ``renewal`` sort is ascending (``days_to_renewal``, the same order as the renewal
    date within a run), accounts without a renewal last. SQLite keeps NULLs first in an
    ascending index and PostgreSQL last, so instead of one ``NULLS LAST`` order (which
    SQLite could not take from ``ix_scores_run_renewal``) the page is read as two index
    walks: the known renewals (``nulls=False``), then, when they run out, the accounts
    without one by id (``nulls=True``, ``limit`` the rows still wanted).
    """
    if query.sort not in _SORT_COLUMNS:
        raise InvalidQueryError(
            f"sort {query.sort!r} is not one of {', '.join(_SORT_COLUMNS)}: pick one of those"
        )
    if query.limit < 1:
        raise InvalidQueryError(f"limit {query.limit} is below 1: ask for at least one row")
    column = _SORT_COLUMNS[query.sort]
    where = at_risk_filters(query, run_id, hidden=hidden)
    rows = query.limit + 1 if limit is None else limit
    if query.sort in _ASCENDING:
        return _ascending_select(column, where, after, nulls=nulls, limit=rows)
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
        sa.select(scores).where(*where).order_by(descending, scores.c.account_id.asc()).limit(rows)
    )


def _ascending_select(
    column: sa.Column[Any],
    where: list[sa.ColumnElement[bool]],
    after: tuple[float | None, str] | None,
    *,
    nulls: bool,
    limit: int,
) -> sa.Select[Any]:
    """One walk of an ascending sort: the known values from ``after`` on, or the NULLs."""
    where = list(where)
    if nulls:
        where.append(column.is_(None))
        if after is not None and after[0] is None:
            where.append(scores.c.account_id > after[1])
        order: tuple[Any, ...] = (column.asc(), scores.c.account_id.asc())
    else:
        where.append(column.is_not(None))
        if after is not None and after[0] is not None:
            # a row value: both databases seek it in the index as one range condition
            where.append(sa.tuple_(column, scores.c.account_id) > sa.tuple_(*after))
        order = (column.asc(), scores.c.account_id.asc())
    return sa.select(scores).where(*where).order_by(*order).limit(limit)
