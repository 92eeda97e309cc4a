"""The data contract: the tables churnrisk reads, their columns, types and rules.

Each date means one thing. A subscription row's ``end_date`` is when it actually
stopped paying: most exports (Stripe's ``ended_at``, a CRM's churn date) write it only
once the customer has left, so a feature may read it only once it has passed (as "the
row covers the day" never reads it otherwise). The renewal or term-end date known at
signing, where the source has one, is the optional ``term_end``, and only it feeds the
renewal-timing features.

This module only declares; :mod:`churnrisk.checks` turns the declarations into the row
checks that :mod:`churnrisk.validate` (DuckDB) and :mod:`churnrisk.spark` run. Every
stage after validation may rely on what is written here: required columns exist,
optional columns exist too (filled with nulls when the source lacks them), and every
value passed its rules. All timestamps are normalised to UTC and held as naive
``TIMESTAMP`` values that mean UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """Logical column types, with their DuckDB physical type."""

    STRING = "VARCHAR"
    TIMESTAMP = "TIMESTAMP"
    DATE = "DATE"
    INTEGER = "BIGINT"
    FLOAT = "DOUBLE"


class Rule(StrEnum):
    """Names of the rules a row can break; they appear in reports as written here."""

    MISSING_VALUE = "missing_value"
    UNPARSEABLE = "unparseable"
    NEGATIVE = "negative"
    OUT_OF_RANGE = "out_of_range"
    NOT_INTEGER = "not_integer"
    DUPLICATE_KEY = "duplicate_key"
    UNKNOWN_ACCOUNT = "unknown_account"
    END_NOT_AFTER_START = "end_not_after_start"
    """An ``end_date`` or a ``term_end`` on or before its row's ``start_date``."""
    RESOLVED_BEFORE_CREATED = "resolved_before_created"
    NOT_ALLOWED = "not_allowed"
    """A text that is not one of its column's allowed values (an activity's kind)."""
    TOO_LONG = "too_long"
    """A text longer than its column's ``max_chars``."""
    MALFORMED_LINE = "malformed_line"
    """A CSV record that cannot be split into the header's columns (a wrong number of
    fields, an unterminated quote); it concerns the whole line, not one column."""


@dataclass(frozen=True)
class Column:
    """One column of a table.

    Attributes
    ----------
    name
        Column name as it appears in the source header.
    kind
        Logical type.
    required
        Whether the column must be present in the source.
    nullable
        Whether an empty value is allowed (optional columns always are).
    min_value, max_value
        Inclusive bounds for numeric columns (``None``: unbounded).
    integer
        Whether a numeric value must be a whole number.
    year_month
        For a date column: whether ``YYYY-MM`` text is read too, as the first day of
        that month (a monthly table's month).
    allowed
        For a text column: the only values it may hold (``None``: any).
    max_chars
        For a text column: the most characters a value may have (``None``: any).
    """

    name: str
    kind: Kind
    required: bool = True
    nullable: bool = False
    min_value: float | None = None
    max_value: float | None = None
    integer: bool = False
    year_month: bool = False
    allowed: tuple[str, ...] | None = None
    max_chars: int | None = None


@dataclass(frozen=True)
class Table:
    """One table of the contract."""

    name: str
    required: bool
    columns: tuple[Column, ...]
    unique: str | None = None
    account_fk: bool = True
    meaning: str = ""
    extra_rules: tuple[Rule, ...] = field(default_factory=tuple)
    money: str | None = None
    """The column holding the table's money (reports say what share of it rows carry)."""

    def column(self, name: str) -> Column:
        """Return the column called ``name``."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def required_columns(self) -> tuple[str, ...]:
        """Names of the columns the source must have."""
        return tuple(c.name for c in self.columns if c.required)


def _opt(name: str, kind: Kind, **kw: Any) -> Column:
    return Column(name, kind, required=False, nullable=True, **kw)


ACTIVITY_KINDS: tuple[str, ...] = ("call", "meeting", "email", "offer", "note", "task")
"""The kinds of CS activity, as the contract's ``activities`` table, the API and the store
accept them."""

ACTIVITY_OUTCOMES: tuple[str, ...] = ("saved", "lost", "expanded", "no_response")
"""What can come of a CS activity."""

ACTIVITY_TEXT_CHARS = 4000
"""The longest text of an activity."""

ACTIVITY_AUTHOR_CHARS = 200
"""The longest name of who did an activity."""


S, TS, D, INT, F = Kind.STRING, Kind.TIMESTAMP, Kind.DATE, Kind.INTEGER, Kind.FLOAT

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "accounts",
            required=True,
            unique="account_id",
            account_fk=False,
            meaning="one row per customer account",
            columns=(
                Column("account_id", S),
                Column("created_at", TS),
                _opt("name", S),
                _opt("plan", S),
                _opt("segment", S),
                _opt("industry", S),
                _opt("region", S),
                _opt("owner", S),
                _opt("seats", INT, min_value=0, integer=True),
                _opt("acquisition_cost", F, min_value=0),
                _opt("referred_by", S),
            ),
        ),
        Table(
            "subscriptions",
            required=True,
            meaning=(
                "paid subscription periods; end_date is the exclusive day the row stopped"
                " paying, known only once it has happened (empty: still paying); term_end is"
                " the renewal or term-end date known when the row was signed; discount is"
                " the share (0-1) taken off the list price"
            ),
            money="mrr",
            extra_rules=(Rule.END_NOT_AFTER_START,),
            columns=(
                Column("account_id", S),
                Column("start_date", D),
                Column("end_date", D, nullable=True),
                Column("mrr", F, min_value=0),
                _opt("plan", S),
                _opt("seats", INT, min_value=0, integer=True),
                _opt("term_end", D),
                _opt("discount", F, min_value=0, max_value=1),
            ),
        ),
        Table(
            "events",
            required=False,
            meaning="product usage events, one row per user action",
            columns=(
                Column("account_id", S),
                Column("user_id", S),
                Column("timestamp", TS),
                _opt("event_type", S),
                _opt("value", F),
            ),
        ),
        Table(
            "tickets",
            required=False,
            unique="ticket_id",
            meaning="support tickets; contacts == 1 means resolved at first contact",
            extra_rules=(Rule.RESOLVED_BEFORE_CREATED,),
            columns=(
                Column("ticket_id", S),
                Column("account_id", S),
                Column("created_at", TS),
                _opt("resolved_at", TS),
                _opt("priority", S),
                _opt("contacts", INT, min_value=1, integer=True),
                _opt("csat", INT, min_value=1, max_value=5, integer=True),
            ),
        ),
        Table(
            "nps",
            required=False,
            meaning="NPS survey answers",
            columns=(
                Column("account_id", S),
                Column("responded_at", TS),
                Column("score", INT, min_value=0, max_value=10, integer=True),
                _opt("user_id", S),
                _opt("comment", S),
            ),
        ),
        Table(
            "orders",
            required=False,
            meaning="one-off purchases and invoices",
            money="amount",
            columns=(
                Column("account_id", S),
                Column("ordered_at", TS),
                Column("amount", F, min_value=0),
            ),
        ),
        Table(
            "costs",
            required=False,
            meaning="monthly cost of serving and retaining each account",
            money="amount",
            columns=(
                Column("account_id", S),
                Column("month", D, year_month=True),
                Column("amount", F, min_value=0),
            ),
        ),
        Table(
            "activities",
            required=False,
            meaning=(
                "what customer success did about an account, from a CRM's history: kind is"
                f" one of {', '.join(ACTIVITY_KINDS)}; outcome, if any, one of"
                f" {', '.join(ACTIVITY_OUTCOMES)}; owner is who did it. `churnrisk score`"
                " imports the rows that occurred before its as-of date into the score store"
            ),
            columns=(
                Column("account_id", S),
                Column("occurred_at", TS),
                Column("kind", S, allowed=ACTIVITY_KINDS),
                _opt("outcome", S, allowed=ACTIVITY_OUTCOMES),
                _opt("owner", S, max_chars=ACTIVITY_AUTHOR_CHARS),
                _opt("text", S, max_chars=ACTIVITY_TEXT_CHARS),
            ),
        ),
    )
}

REQUIRED_TABLES: tuple[str, ...] = tuple(n for n, t in TABLES.items() if t.required)
OPTIONAL_TABLES: tuple[str, ...] = tuple(n for n, t in TABLES.items() if not t.required)
