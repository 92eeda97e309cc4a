"""CS activities: what customer success did about an account, and when.

An activity is a touch (a call, a meeting, an e-mail, an offer, a note, a task) with who
did it, when, an optional outcome and an optional snooze date. Activities come from the
API (a manager adds one on the account page) or are imported from a CRM's history (the
optional contract table ``activities``). They are kept point in time by ``occurred_at``:
every read can be asked "as known before" a moment, which is what a later uplift model
will learn from.

Snoozing: the latest activity of an account that carries a ``snooze_until`` date decides
the snooze, so a later entry can shorten or end one (``snooze_until`` today or earlier).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa

from churnrisk.contract import (
    ACTIVITY_AUTHOR_CHARS,
    ACTIVITY_KINDS,
    ACTIVITY_OUTCOMES,
    ACTIVITY_TEXT_CHARS,
)
from churnrisk.store.database import Database
from churnrisk.store.errors import InvalidQueryError
from churnrisk.store.queries import id_chunks
from churnrisk.store.schema import activities, activity_stamp

KINDS: tuple[str, ...] = ACTIVITY_KINDS
"""The kinds of activity, as the API and the import accept them (the contract's)."""

CONTACT_KINDS: tuple[str, ...] = ("call", "meeting", "email", "offer")
"""The kinds that reach the customer: they set an account's last contact (a note or a
task is work about the account, not a contact with it)."""

OUTCOMES: tuple[str, ...] = ACTIVITY_OUTCOMES

Source = Literal["api", "import"]

TEXT_CHARS = ACTIVITY_TEXT_CHARS
AUTHOR_CHARS = ACTIVITY_AUTHOR_CHARS


@dataclass(frozen=True)
class Activity:
    """One recorded activity."""

    activity_id: str
    account_id: str
    occurred_at: datetime
    kind: str
    text: str
    author: str | None
    outcome: str | None
    snooze_until: date | None
    source: Source
    recorded_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """Return the activity as JSON values (times and dates as ISO text)."""
        return {
            "activity_id": self.activity_id,
            "account_id": self.account_id,
            "occurred_at": self.occurred_at.isoformat(),
            "kind": self.kind,
            "text": self.text,
            "author": self.author,
            "outcome": self.outcome,
            "snooze_until": None if self.snooze_until is None else self.snooze_until.isoformat(),
            "source": self.source,
            "recorded_at": self.recorded_at.isoformat(),
        }


def _activity(row: Mapping[Any, Any]) -> Activity:
    return Activity(**{k: row[k] for k in Activity.__dataclass_fields__})


def check_activity(kind: str, text: str, author: str | None, outcome: str | None) -> None:
    """Raise :class:`InvalidQueryError` naming the first bad field of an activity."""
    if kind not in KINDS:
        raise InvalidQueryError(f"activity kind {kind!r} is not one of {', '.join(KINDS)}")
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidQueryError(f"activity outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
    if len(text) > TEXT_CHARS:
        raise InvalidQueryError(f"activity text is {len(text)} characters; at most {TEXT_CHARS}")
    if author is not None and len(author) > AUTHOR_CHARS:
        raise InvalidQueryError(f"activity author is longer than {AUTHOR_CHARS} characters")


def import_id(account_id: str, occurred_at: datetime, kind: str, text: str) -> str:
    """Return the id of an imported activity: a digest of what it says.

    Importing the same history twice therefore adds nothing.
    """
    content = "\x1f".join((account_id, _utc(occurred_at).isoformat(), kind, text))
    return hashlib.sha256(content.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class ActivityStore:
    """Activities in a score store's database (schema at head)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def add(
        self,
        account_id: str,
        kind: str,
        text: str = "",
        *,
        author: str | None = None,
        occurred_at: datetime | None = None,
        outcome: str | None = None,
        snooze_until: date | None = None,
    ) -> Activity:
        """Record one activity (``occurred_at`` default: now) and return it."""
        check_activity(kind, text, author, outcome)
        now = datetime.now(UTC)
        record = Activity(
            activity_id=secrets.token_hex(16),
            account_id=account_id,
            occurred_at=_utc(occurred_at or now),
            kind=kind,
            text=text,
            author=author,
            outcome=outcome,
            snooze_until=snooze_until,
            source="api",
            recorded_at=now,
        )
        with self._database.errors("record an activity"), self._database.writer.begin() as conn:
            conn.execute(activities.insert().values(**record.__dict__))
            _raise_stamp(conn)
        return record

    def import_frame(self, frame: pd.DataFrame) -> int:
        """Import a CRM's history (the contract's ``activities`` table); return rows added.

        ``frame`` has ``account_id``, ``occurred_at``, ``kind`` and optionally
        ``outcome``, ``owner`` (stored as the author) and ``text``, already validated
        against the contract. Rows already imported (same account, time, kind and text)
        are left as they are.
        """
        now = datetime.now(UTC)
        rows: dict[str, dict[str, Any]] = {}
        for item in frame.to_dict("records"):
            text = _text(item.get("text")) or ""
            when = _utc(pd.Timestamp(item["occurred_at"]).to_pydatetime())
            kind, author, outcome = (
                str(item["kind"]),
                _text(item.get("owner")),
                _text(item.get("outcome")),
            )
            check_activity(kind, text, author, outcome)
            key = import_id(str(item["account_id"]), when, kind, text)
            rows[key] = {
                "activity_id": key,
                "account_id": str(item["account_id"]),
                "occurred_at": when,
                "kind": kind,
                "text": text,
                "author": author,
                "outcome": outcome,
                "snooze_until": None,
                "source": "import",
                "recorded_at": now,
            }
        if not rows:
            return 0
        with self._database.errors("import activities"), self._database.writer.begin() as conn:
            known: set[str] = set()
            for chunk in id_chunks(list(rows)):
                stmt = sa.select(activities.c.activity_id).where(
                    activities.c.activity_id.in_(chunk)
                )
                known.update(conn.execute(stmt).scalars())
            new = [row for key, row in rows.items() if key not in known]
            if new:
                conn.execute(activities.insert(), new)
                _raise_stamp(conn)
        return len(new)

    def for_account(
        self, account_id: str, *, limit: int = 100, before: datetime | None = None
    ) -> list[Activity]:
        """Return an account's activities, newest first (``before``: that occurred before)."""
        if limit < 1:
            raise InvalidQueryError(f"limit must be >= 1, got {limit}")
        stmt = sa.select(activities).where(activities.c.account_id == account_id)
        if before is not None:
            stmt = stmt.where(activities.c.occurred_at < before)
        stmt = stmt.order_by(
            activities.c.occurred_at.desc(), activities.c.recorded_at.desc()
        ).limit(limit)
        with self._database.errors("read activities"), self._database.engine.connect() as conn:
            return [_activity(r._mapping) for r in conn.execute(stmt)]

    def last_contacts(
        self, *, before: datetime | None = None, account_ids: Sequence[str] | None = None
    ) -> dict[str, datetime]:
        """Return each account's latest contact (:data:`CONTACT_KINDS`) time.

        ``account_ids`` limits the answer to those accounts (default: every account).
        """
        latest = sa.func.max(activities.c.occurred_at)
        stmt = (
            sa.select(activities.c.account_id, latest.label("at"))
            .where(activities.c.kind.in_(CONTACT_KINDS))
            .group_by(activities.c.account_id)
        )
        if before is not None:
            stmt = stmt.where(activities.c.occurred_at < before)
        if account_ids is not None:
            stmt = stmt.where(activities.c.account_id.in_(list(account_ids)))
        with self._database.errors("read last contacts"), self._database.engine.connect() as conn:
            return {str(r.account_id): r.at for r in conn.execute(stmt)}

    def stamp(self) -> int:
        """Return the activities' version: it changes with every write (an entry, an import).

        Each write raises it in its own transaction, so whoever sees an activity sees the
        version that came with it: a cache keyed by it never serves an answer older than
        the latest activity, whichever process wrote it. One primary-key read.
        """
        stmt = sa.select(activity_stamp.c.version).where(activity_stamp.c.id == 1)
        with self._database.errors("read activities"), self._database.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one_or_none() or 0)

    def snoozed(self, today: date, *, account_ids: Sequence[str] | None = None) -> dict[str, date]:
        """Return the accounts snoozed after ``today``, each with the day its snooze ends.

        ``account_ids`` limits the answer to those accounts (default: every account).
        """
        stmt = (
            sa.select(activities.c.account_id, activities.c.snooze_until)
            .where(activities.c.snooze_until.is_not(None))
            .order_by(
                activities.c.account_id,
                activities.c.occurred_at.desc(),
                activities.c.recorded_at.desc(),
            )
        )
        if account_ids is not None:
            stmt = stmt.where(activities.c.account_id.in_(list(account_ids)))
        with self._database.errors("read snoozes"), self._database.engine.connect() as conn:
            out: dict[str, date] = {}
            seen: set[str] = set()
            for account_id, until in conn.execute(stmt):
                if account_id in seen:
                    continue
                seen.add(account_id)
                if until > today:
                    out[account_id] = until
        return out


def _raise_stamp(conn: sa.Connection) -> None:
    """Raise the activities' version, in the transaction of the write."""
    conn.execute(
        activity_stamp.update()
        .where(activity_stamp.c.id == 1)
        .values(version=activity_stamp.c.version + 1)
    )


def _utc(value: datetime) -> datetime:
    """Return ``value`` in UTC; a naive value is taken to be UTC already."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _text(value: Any) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return str(value)
