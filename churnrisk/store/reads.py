"""Reading the score store: runs, a run's scores, and the read models the API serves.

Each read is one short transaction (a consistent snapshot on both databases). The API's
reads (:meth:`ScoreReader.at_risk`, :meth:`ScoreReader.account_detail`,
:meth:`ScoreReader.summary`, :meth:`ScoreReader.trend`, :meth:`ScoreReader.export_rows`)
answer from the covering indexes and the per-tier ``run_totals``, whatever the number of
accounts.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from churnrisk.errors import DataError
from churnrisk.store.activities import ActivityStore
from churnrisk.store.database import Database
from churnrisk.store.errors import InvalidQueryError, NoRunError, StaleCursorError, StoreError
from churnrisk.store.queries import (
    _ACCOUNT_ROWS,
    _ASCENDING,
    _HISTORY_COLUMNS,
    _RUN_ORDER,
    _SORT_COLUMNS,
    _decode_cursor,
    _encode_cursor,
    _newest_of_its_date,
    at_risk_filters,
    at_risk_select,
    id_chunks,
)
from churnrisk.store.records import AtRiskPage, AtRiskQuery, RunRecord, _run_record, _utc
from churnrisk.store.schema import SCORE_COLUMNS, run_totals, score_runs, scores


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


def _with_contact(
    rows: list[dict[str, Any]],
    activities: ActivityStore,
    run: RunRecord,
    *,
    today: date,
    days: int,
) -> None:
    """Add ``last_contact``, ``snoozed_until`` and ``needs_contact`` to a page's rows.

    ``last_contact`` is the latest contact activity
    (:meth:`ActivityStore.last_contacts`, calls, meetings, e-mails and offers);
    ``needs_contact`` is true for a row of the run's highest tier whose last contact is
    before midnight UTC ``days`` days before ``today``, or that was never contacted.
    """
    ids = [str(r["account_id"]) for r in rows]
    if not ids:
        return
    contacts = activities.last_contacts(account_ids=ids)
    snoozes = activities.snoozed(today, account_ids=ids)
    since = datetime.combine(today - timedelta(days=days), time(), UTC)
    top = run.tier_names[0]
    for row, account_id in zip(rows, ids, strict=True):
        last = contacts.get(account_id)
        row["last_contact"] = last
        row["snoozed_until"] = snoozes.get(account_id)
        row["needs_contact"] = row["risk_tier"] == top and (last is None or last < since)


def _no_run_message() -> str:
    return "no scoring run yet: run `churnrisk score DATA`"


class ScoreReader:
    """Reads runs and scores from a score store's database.

    Parameters
    ----------
    database
        The store's database (schema at head).
    """

    def __init__(self, database: Database) -> None:
        self._database = database

    def current_run(self) -> RunRecord | None:
        """Return the current run (greatest ``(as_of, scored_at)``), or None."""
        with self._database.errors("read the current run"), self._database.engine.connect() as conn:
            return self.current(conn)

    def current(self, conn: Connection) -> RunRecord | None:
        """Return the current run read on ``conn`` (inside the caller's transaction), or None."""
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
        with (
            self._database.errors("read the previous run"),
            self._database.engine.connect() as conn,
        ):
            row = conn.execute(stmt).first()
        return None if row is None else _run_record(row._mapping)

    def run(self, run_id: str) -> RunRecord | None:
        """Return one run by id, or None."""
        stmt = sa.select(score_runs).where(score_runs.c.run_id == run_id)
        with self._database.errors(f"read run {run_id}"), self._database.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _run_record(row._mapping)

    def runs(self, limit: int = 50) -> list[RunRecord]:
        """Return up to ``limit`` runs, newest (greatest position) first."""
        stmt = sa.select(score_runs).order_by(*_RUN_ORDER).limit(limit)
        with self._database.errors("list runs"), self._database.engine.connect() as conn:
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
        with self._database.errors("read the risk trend"), self._database.engine.connect() as conn:
            runs = [_run_record(r._mapping) for r in conn.execute(stmt)]
            return _with_totals(conn, runs[::-1])

    def totals(self, run_id: str) -> dict[str, Any] | None:
        """Return one run as a :meth:`trend` point (its tier totals), or None if unknown."""
        stmt = sa.select(score_runs).where(score_runs.c.run_id == run_id)
        with (
            self._database.errors(f"read the totals of run {run_id}"),
            self._database.engine.connect() as conn,
        ):
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
        with (
            self._database.errors(f"read the scores of run {run_id}"),
            self._database.engine.connect() as conn,
        ):
            exists = conn.execute(
                sa.select(score_runs.c.run_id).where(score_runs.c.run_id == run_id)
            ).first()
            if exists is None:
                raise StoreError(f"score store {self._database.url} has no run {run_id!r}")
            records = [tuple(r) for r in conn.execute(stmt)]
        frame = pd.DataFrame.from_records(records, columns=names)
        for name in names:
            if isinstance(scores.c[name].type, sa.Float):
                frame[name] = frame[name].astype("float64")
        return frame

    def at_risk(self, query: AtRiskQuery) -> AtRiskPage:
        """Return one page of the current run's at-risk list.

        Filters are AND-ed (``tiers``: any of them). Rows are sorted descending by the
        sort column (ascending for ``renewal``, accounts without a renewal last), ties by
        ``account_id`` ascending, and paged by keyset: the cursor holds the last row's
        sort value and account id, so a page costs an index seek whatever its depth.
        Accounts snoozed after ``query.today`` are left out of the rows and the total
        unless ``query.include_snoozed``; each row gets its contact
        (:func:`_with_contact`).

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
        if query.contact_days < 1:
            raise InvalidQueryError(
                f"contact_days {query.contact_days} is below 1: ask for at least one day"
            )
        today = query.today or datetime.now(UTC).date()
        activities = ActivityStore(self._database)
        hidden = () if query.include_snoozed else tuple(sorted(activities.snoozed(today)))
        dialect = self._database.engine.dialect.name
        with (
            self._database.errors("read the at-risk list"),
            self._database.engine.connect() as conn,
        ):
            run = self.current(conn)
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
            filters = at_risk_filters(query, run.run_id, hidden=hidden)
            total = (
                run.accounts  # every row of the run: no need to count
                if len(filters) == 1
                else conn.execute(
                    sa.select(sa.func.count()).select_from(scores).where(*filters)
                ).scalar_one()
            )
            rows: list[dict[str, Any]] = []
            ascending = query.sort in _ASCENDING
            in_nulls = ascending and after is not None and after[0] is None
            if not in_nulls:
                stmt = at_risk_select(
                    query, run.run_id, dialect=dialect, after=after, hidden=hidden
                )
                rows = [dict(r._mapping) for r in conn.execute(stmt)]
            if ascending and len(rows) <= query.limit:
                # the known renewals ran out: the accounts without one follow, by id
                stmt = at_risk_select(
                    query,
                    run.run_id,
                    dialect=dialect,
                    after=after if in_nulls else None,
                    hidden=hidden,
                    nulls=True,
                    limit=query.limit + 1 - len(rows),
                )
                rows += [dict(r._mapping) for r in conn.execute(stmt)]
        next_cursor = None
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            last = rows[-1]
            column = _SORT_COLUMNS[query.sort].name
            next_cursor = _encode_cursor(run.run_id, query.sort, last[column], last["account_id"])
        _with_contact(rows, activities, run, today=today, days=query.contact_days)
        return AtRiskPage(run=run, rows=rows, next_cursor=next_cursor, total=int(total))

    def renewals(
        self, days: int, *, owner: str | None = None, today: date | None = None, limit: int = 500
    ) -> dict[str, Any]:
        """Return the current run's accounts renewing within ``days`` days, by tier.

        Keys: ``run`` (:class:`RunRecord`), ``tiers`` (``[{"tier", "accounts", "mrr",
        "arr"}]``, every tier of the run, riskiest first, zeros included; ``mrr`` sums
        ``renewal_mrr``, ``arr = 12 x mrr``), ``total`` (the same over every tier),
        ``rows`` (the at-risk list's rows with ``renewing_within=days`` sorted by renewal,
        snoozed accounts included, at most ``limit``) and ``truncated``.

        Raises
        ------
        NoRunError
            The store holds no run yet.
        """
        query = AtRiskQuery(
            owner=owner,
            renewing_within=days,
            sort="renewal",
            limit=limit,
            include_snoozed=True,
            today=today,
        )
        page = self.at_risk(query)
        amount = sa.func.coalesce(sa.func.sum(scores.c.renewal_mrr), 0.0)
        stmt = (
            sa.select(scores.c.risk_tier, sa.func.count().label("n"), amount.label("mrr"))
            .where(*at_risk_filters(query, page.run.run_id))
            .group_by(scores.c.risk_tier)
        )
        with self._database.errors("read renewals"), self._database.engine.connect() as conn:
            found = {r.risk_tier: (int(r.n), float(r.mrr)) for r in conn.execute(stmt)}
        counts = [(t, *found.get(t, (0, 0.0))) for t in page.run.tier_names]
        tiers = [{"tier": t, "accounts": n, "mrr": m, "arr": 12 * m} for t, n, m in counts]
        mrr = sum(m for _, _, m in counts)
        return {
            "run": page.run,
            "tiers": tiers,
            "total": {"accounts": page.total, "mrr": mrr, "arr": 12 * mrr},
            "rows": page.rows,
            "truncated": page.next_cursor is not None,
        }

    def last_before(
        self, until: Mapping[str, date], columns: Sequence[str], *, runs: int = 104
    ) -> pd.DataFrame:
        """Return each account's latest score row on or before its date in ``until``.

        Only the newest run of each as-of date counts, among the latest ``runs`` as-of
        dates. The rows are read by account (``ix_scores_account``), a few hundred ids a
        query, rather than run by run, so the cost follows the accounts asked for, not the
        size of the book.

        Returns
        -------
        pandas.DataFrame
            ``account_id``, ``as_of`` and ``columns``; accounts never scored by then are
            absent.
        """
        names = ["account_id", *[c for c in columns if c != "account_id"]]
        kept = [r.run_id for r in (p["run"] for p in self.trend(limit=runs))]
        stmt = (
            sa.select(*(scores.c[c] for c in names), score_runs.c.as_of)
            .join(score_runs, score_runs.c.run_id == scores.c.run_id)
            .where(
                scores.c.account_id.in_(sa.bindparam("ids", expanding=True)),
                scores.c.run_id.in_(kept),
            )
        )
        ids = sorted(until)
        found = []
        with self._database.errors("read the last scores"), self._database.engine.connect() as conn:
            for chunk in id_chunks(ids if kept else []):
                found += [dict(r._mapping) for r in conn.execute(stmt, {"ids": chunk})]
        best: dict[str, dict[str, Any]] = {}
        for row in found:
            day = row["as_of"]
            account = row["account_id"]
            if day <= until[account] and (account not in best or day > best[account]["as_of"]):
                best[account] = row | {"as_of": day}
        return pd.DataFrame([best[a] for a in ids if a in best], columns=[*names, "as_of"])

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
        with (
            self._database.errors(f"read account {account_id}"),
            self._database.engine.connect() as conn,
        ):
            rows = [
                dict(r._mapping) for r in conn.execute(_ACCOUNT_ROWS, {"account_id": account_id})
            ]
            if not rows:
                return None
            if current_run_id is None:
                current = self.current(conn)
                current_run_id = current.run_id if current is not None else None
        latest = rows[-1]
        latest["current"] = latest["run_id"] == current_run_id
        history = [{k: row[k] for k in _HISTORY_COLUMNS} for row in rows]
        return latest, history

    def summary(self, owner: str | None = None) -> dict[str, Any] | None:
        """Return the current run's headline figures and filter values, or None without runs.

        Keys: ``run`` (:meth:`RunRecord.to_dict`), ``accounts``, ``mrr``, ``mrr_at_risk``,
        ``tiers`` (``[{"tier", "accounts", "mrr_at_risk"}]`` riskiest first, every tier of
        the run including empty ones), and the distinct non-null ``segments``, ``plans``
        and ``owners``, sorted. With ``owner`` ("my book"), the figures and tiers count
        only that owner's accounts; the filter values still list the whole run's.
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
        with self._database.errors("read the summary"), self._database.engine.connect() as conn:
            run = self.current(conn)
            if run is None:
                return None
            groups = conn.execute(stmt.where(s.run_id == run.run_id)).all()
        tier_accounts: dict[str, int] = dict.fromkeys(run.tier_names, 0)
        tier_at_risk: dict[str, list[float]] = {t: [] for t in run.tier_names}
        mrr: list[float] = []
        segments, plans, owners = set(), set(), set()
        for tier, segment, plan, group_owner, count, group_mrr, group_at_risk in groups:
            segments.add(segment)
            plans.add(plan)
            owners.add(group_owner)
            if owner is not None and group_owner != owner:
                continue
            tier_accounts[tier] = tier_accounts.get(tier, 0) + int(count)
            tier_at_risk.setdefault(tier, []).append(float(group_at_risk))
            mrr.append(float(group_mrr))
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

    def mrr_rank(self, run_id: str, mrr: float) -> tuple[int, int]:
        """Return ``(larger, accounts)``: how many of a run's accounts have an MRR above ``mrr``.

        An unknown run has no accounts: ``(0, 0)``.
        """
        s = scores.c
        stmt = sa.select(sa.func.count().filter(s.mrr > mrr), sa.func.count()).where(
            s.run_id == run_id
        )
        with (
            self._database.errors(f"rank MRR in run {run_id}"),
            self._database.engine.connect() as conn,
        ):
            larger, accounts = conn.execute(stmt).one()
        return int(larger or 0), int(accounts or 0)

    def search(self, text: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """Return the current run's accounts whose id or name contains ``text``.

        Case-insensitive; riskiest first (ties by ``account_id``). Each hit has
        ``account_id``, ``name``, ``segment``, ``owner``, ``risk_tier``,
        ``churn_probability`` and ``mrr``. No run, or an empty ``text``: no hits.
        """
        if limit < 1:
            raise InvalidQueryError(f"limit must be >= 1, got {limit}")
        needle = text.strip().lower()
        if not needle:
            return []
        escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        s = scores.c
        columns = (
            s.account_id,
            s.name,
            s.segment,
            s.owner,
            s.risk_tier,
            s.churn_probability,
            s.mrr,
        )
        with self._database.errors("search accounts"), self._database.engine.connect() as conn:
            run = self.current(conn)
            if run is None:
                return []
            stmt = (
                sa.select(*columns)
                .where(
                    s.run_id == run.run_id,
                    sa.or_(
                        sa.func.lower(s.account_id).like(pattern, escape="\\"),
                        sa.func.lower(s.name).like(pattern, escape="\\"),
                    ),
                )
                .order_by(s.churn_probability.desc(), s.account_id)
                .limit(limit)
            )
            return [dict(r._mapping) for r in conn.execute(stmt)]

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
        with self._database.errors(f"export run {run_id}"), self._database.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch_size).execute(stmt)
            for part in result.partitions():
                yield [dict(r._mapping) for r in part]
