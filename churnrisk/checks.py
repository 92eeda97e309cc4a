"""The contract's row rules, written once as Ibis expressions for DuckDB and Spark.

:mod:`churnrisk.contract` declares the tables; this module turns each declaration into
the expressions that check a source table row by row: the contract-typed value of every
column and one boolean per (column, rule) that a row can break. :mod:`churnrisk.validate`
(DuckDB) and :mod:`churnrisk.spark` compile the very same expressions; what only one
engine can do (reading the sources, the CSV reader's malformed lines, row numbers, the
report and the quarantine files) stays in those modules.

Which texts are read is defined here, by anchored regular expressions checked before any
cast, so that both engines accept exactly the same texts (their casts alone do not:
Spark reads ``2024``, ``2026-03`` and ``yesterday`` as timestamps, DuckDB reads
``epoch``, ``infinity`` and time-zone names):

* a timestamp is ``YYYY-MM-DD``, optionally followed by ``T`` or a space and ``hh:mm``
  or ``hh:mm:ss[.fraction]``, the latter optionally followed by an offset (``Z``,
  ``±hh``, ``±hhmm`` or ``±hh:mm``; Spark does not read one after ``hh:mm``); naive
  text means UTC, offsets convert to UTC; nothing around it, not even spaces;
* a date is such a timestamp at midnight UTC; a column declared ``year_month`` also
  reads ``YYYY-MM`` as the first day of that month;
* a number is decimal text with an optional sign, fraction and exponent, spaces around
  it allowed; it must be finite.

Typed sources (Parquet, DuckDB, Spark tables) keep their types: numbers are read as
numbers, timestamps with a time zone converted to UTC, naive timestamps taken as UTC.
Other types are read through their text.

A few operations have an engine-specific spelling, chosen by :data:`Engine`, where
Ibis's one spelling would be slow or mean something else on one engine: the naive UTC
timestamp of an instant (DuckDB's ``CAST(... AS TIMESTAMP)`` of a ``TIMESTAMPTZ`` goes
through the time-zone library and is several times slower than reading the stored
microseconds, ``make_timestamp(epoch_us(x))``, which Ibis does not spell; Spark's
``TIMESTAMP`` already is an instant read in the UTC session time zone), reading a
timestamp from text, the test of a finite number (:func:`_finite`) and the NULL test of
a double (Ibis's ``isnull`` on Spark also counts NaN).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Literal

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir

from churnrisk.contract import TABLES, Column, Kind, Rule, Table

__all__ = [
    "END_COLUMNS",
    "FLAG",
    "MONTH_TEXT",
    "NUMBER_TEXT",
    "TIMESTAMP_TEXT",
    "VALUE",
    "Check",
    "Engine",
    "TableChecks",
    "check_table",
    "schema",
    "valid_values",
]

Engine = Literal["duckdb", "spark"]
"""The engine the expressions are compiled for (see the module docstring)."""

END_COLUMNS: tuple[str, ...] = ("end_date", "term_end")
"""The subscription dates that must come after ``start_date`` (rule end_not_after_start)."""

_ZONE = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)"
_TIME = rf"[T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{{1,9}})?{_ZONE}?)?"
TIMESTAMP_TEXT = rf"^[0-9]{{4}}-[0-9]{{1,2}}-[0-9]{{1,2}}({_TIME})?\z"
"""The texts read as timestamps (and as dates, when the time is midnight UTC)."""
MONTH_TEXT = r"^[0-9]{4}-[0-9]{2}\z"
"""The texts a ``year_month`` date column also reads, as the first day of the month."""
NUMBER_TEXT = r"^ *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *\z"
"""The texts read as numbers (``nan``, ``inf``, ``1_000``, ``0x10``, ``1d`` are not)."""

_INT64_LIMIT = 2.0**63
"""Whole numbers of at least this magnitude do not fit a BIGINT: they are unparseable."""

VALUE = "__cr_v{}"
"""The column holding the contract-typed value of the i-th contract column."""
FLAG = "__cr_k{}"
"""The column holding whether a row breaks the i-th check (never NULL)."""
_NUMBER = "__cr_n{}"


def _epoch_us(instant: ir.TimestampValue) -> ir.IntegerValue:
    """DuckDB's microseconds since 1970-01-01 UTC of an instant."""


def _make_timestamp(micros: ir.IntegerValue) -> ir.TimestampValue:
    """DuckDB's naive timestamp ``micros`` microseconds after 1970-01-01."""


# DuckDB functions Ibis does not spell, called by name
_epoch_us = ibis.udf.scalar.builtin(
    _epoch_us, name="epoch_us", signature=((dt.Timestamp(timezone="UTC"),), dt.int64)
)
_make_timestamp = ibis.udf.scalar.builtin(
    _make_timestamp, name="make_timestamp", signature=((dt.int64,), dt.Timestamp())
)


def _isfinite(number: ir.FloatingValue) -> ir.BooleanValue:
    """DuckDB's test for a number that is neither NaN nor infinite."""


_isfinite = ibis.udf.scalar.builtin(
    _isfinite, name="isfinite", signature=((dt.float64,), dt.boolean)
)


def _trim(text: ir.StringValue) -> ir.StringValue:
    """``text`` without the spaces around it (only spaces, on DuckDB and Spark alike)."""


# Ibis's strip() removes every kind of whitespace, which DuckDB does several times
# slower than its trim() of spaces; trim() means the same on both engines
_trim = ibis.udf.scalar.builtin(_trim, name="trim", signature=((dt.string,), dt.string))


def _finite(number: ir.FloatingValue, engine: Engine) -> ir.BooleanValue:
    """Whether a double is neither NaN nor infinite.

    DuckDB 2.0 answers ``isnan`` and ``isinf`` from Parquet statistics, which leave
    NaN out, and so misses a NaN in a Parquet file; ``isfinite`` reads the values.
    Ibis 12 compiles ``isinf`` for Spark to ``FALSE``; a finite magnitude is at most
    the largest double, and Spark orders NaN above every number.
    """
    if engine == "duckdb":
        return _isfinite(number)
    return ~number.isnan() & (number.abs() <= sys.float_info.max)


def _is_null(value: ir.Value, engine: Engine) -> ir.BooleanValue:
    """Whether a value is NULL (Ibis's ``isnull`` on Spark also counts a NaN)."""
    if engine == "spark" and value.type().is_floating():
        return value.isnull() & ~value.isnan().fill_null(False)
    return value.isnull()


def _utc(instant: ir.TimestampValue, engine: Engine) -> ir.TimestampValue:
    """Return the naive UTC timestamp of an instant (a value with a time zone)."""
    if engine == "duckdb":
        return _make_timestamp(_epoch_us(instant))
    return instant.cast("timestamp")


def _timestamp_from_text(text: ir.StringValue, engine: Engine) -> ir.TimestampValue:
    """Read :data:`TIMESTAMP_TEXT` texts as naive UTC timestamps; NULL for other texts."""
    if engine == "duckdb":
        parsed = _utc(text.try_cast(dt.Timestamp(timezone="UTC")), engine)
    else:
        parsed = text.try_cast("timestamp")
    return ibis.ifelse(text.re_search(TIMESTAMP_TEXT), parsed, ibis.null("timestamp"))


@dataclass(frozen=True)
class Check:
    """One rule applied to one column.

    Attributes
    ----------
    column
        The column the rule concerns (``""`` for a malformed record).
    rule
        The rule.
    broken
        True when the row breaks the rule; NULL counts as not broken.
    keep
        An equivalent predicate for the rows that keep to the rule, when one is cheaper
        to filter on (a semi join instead of a mark join); a row that breaks another
        rule may read NULL.
    """

    column: str
    rule: Rule
    broken: ir.BooleanValue
    keep: ir.BooleanValue | None = None

    @property
    def label(self) -> str:
        """``column:rule``, as reports and quarantine files name it."""
        return f"{self.column}:{self.rule}"


def _missing(ref: ir.Value, engine: Engine) -> ir.BooleanValue:
    """Whether a source value is empty: NULL, or text of spaces only."""
    if ref.type().is_string():
        return ref.isnull() | (_trim(ref) == "")
    return _is_null(ref, engine)


def _text(ref: ir.Value) -> ir.StringValue:
    return ref if ref.type().is_string() else ref.cast("string")


def _timestamp(ref: ir.Value, engine: Engine) -> ir.TimestampValue:
    kind = ref.type()
    if kind.is_timestamp() and kind.timezone is not None:
        return _utc(ref, engine)
    if kind.is_timestamp() or kind.is_date():
        return ref.cast("timestamp")
    return _timestamp_from_text(_text(ref), engine)


def _date(col: Column, ref: ir.Value, engine: Engine) -> ir.DateValue:
    if ref.type().is_date():
        return ref
    ts = _timestamp(ref, engine)
    day = ibis.ifelse(ts.truncate("D") == ts, ts.date(), ibis.null("date"))
    if not col.year_month or ref.type().is_timestamp():
        return day
    text = _text(ref)
    first = ibis.ifelse(
        text.re_search(MONTH_TEXT), (text + "-01").try_cast("date"), ibis.null("date")
    )
    return day.coalesce(first)


def _number(ref: ir.Value, engine: Engine) -> ir.FloatingValue:
    """Return ``ref`` as a double, NULL when it is no finite number."""
    if ref.type().is_numeric():
        number = ref.cast("float64")
    else:
        text = _text(ref)
        number = ibis.ifelse(
            text.re_search(NUMBER_TEXT), text.try_cast("float64"), ibis.null("float64")
        )
    return ibis.ifelse(_finite(number, engine), number, ibis.null("float64"))


def _parsed(col: Column, staged: ir.Table, i: int, engine: Engine) -> ir.Value:
    """Return the contract-typed value of given column ``col``, NULL when empty or unreadable.

    ``staged`` holds the source columns and, for a numeric column, its number
    (:func:`_number`) as ``__cr_n<i>``.
    """
    ref = staged[col.name]
    if col.kind is Kind.STRING:
        value: ir.Value = _text(ref)
    elif col.kind is Kind.TIMESTAMP:
        value = _timestamp(ref, engine)
    elif col.kind is Kind.DATE:
        value = _date(col, ref, engine)
    else:
        value = staged[_NUMBER.format(i)]
        if col.kind is Kind.INTEGER:
            fits = value.abs() < _INT64_LIMIT
            value = ibis.ifelse(fits, value.cast("int64"), ibis.null("int64"))
    return ibis.ifelse(_missing(ref, engine), ibis.null(_IBIS_TYPES[col.kind]), value)


def _direct(col: Column, source: ir.Table, engine: Engine) -> ir.Value:
    """Return the contract-typed value of ``col`` for rows known to keep every rule.

    It skips what those rows cannot hold (an empty required value, a number that is
    not finite), so a view over valid rows does not pay for the checks at each read.
    """
    target = _IBIS_TYPES[col.kind]
    if col.name not in source.columns:
        return ibis.null(target)
    ref = source[col.name]
    if col.kind is Kind.STRING:
        text = _text(ref)
        return (
            text
            if not col.nullable
            else ibis.ifelse(_missing(ref, engine), ibis.null(target), text)
        )
    if col.kind is Kind.TIMESTAMP:
        return _timestamp(ref, engine)
    if col.kind is Kind.DATE:
        return _date(col, ref, engine)
    return (ref if ref.type().is_numeric() else _number(ref, engine)).cast(target)


_IBIS_TYPES: dict[Kind, str] = {
    Kind.STRING: "string",
    Kind.TIMESTAMP: "timestamp",
    Kind.DATE: "date",
    Kind.INTEGER: "int64",
    Kind.FLOAT: "float64",
}


def schema(name: str) -> ibis.Schema:
    """Return the Ibis schema of contract table ``name`` (its columns in contract types)."""
    return ibis.schema({c.name: _IBIS_TYPES[c.kind] for c in TABLES[name].columns})


def _column_checks(col: Column, typed: ir.Table, i: int, engine: Engine) -> list[Check]:
    """Return the checks of one given contract column over the ``typed`` table."""
    missing = _missing(typed[col.name], engine)
    value = typed[VALUE.format(i)]
    checks: list[Check] = []
    if not col.nullable:
        checks.append(Check(col.name, Rule.MISSING_VALUE, missing))
    if col.kind is not Kind.STRING:
        checks.append(Check(col.name, Rule.UNPARSEABLE, ~missing & _is_null(value, engine)))
    if col.allowed is not None:
        known = value.isin(list(col.allowed))
        checks.append(Check(col.name, Rule.NOT_ALLOWED, ~missing & ~known))
    if col.max_chars is not None:
        checks.append(Check(col.name, Rule.TOO_LONG, ~missing & (value.length() > col.max_chars)))
    if col.kind not in (Kind.INTEGER, Kind.FLOAT):
        return checks
    number = typed[_NUMBER.format(i)]
    if col.integer:
        checks.append(Check(col.name, Rule.NOT_INTEGER, number % 1 != 0))
    bounds = []
    if col.min_value is not None:
        bounds.append(number < col.min_value)
    if col.max_value is not None:
        bounds.append(number > col.max_value)
    if bounds:
        rule = Rule.NEGATIVE if col.min_value == 0 and col.max_value is None else Rule.OUT_OF_RANGE
        checks.append(Check(col.name, rule, reduce(lambda a, b: a | b, bounds)))
    return checks


def _table_checks(
    table: Table,
    typed: ir.Table,
    *,
    known_accounts: ir.Table | None,
    unsound: str | None,
    engine: Engine,
) -> list[Check]:
    """Return every check of ``table`` over ``typed``, in column and rule order."""
    value = {c.name: typed[VALUE.format(i)] for i, c in enumerate(table.columns)}
    given = set(typed.columns)
    checks = [
        check
        for i, col in enumerate(table.columns)
        if col.name in given
        for check in _column_checks(col, typed, i, engine)
    ]
    if table.unique is not None:
        key = _text(typed[table.unique])
        # every row sharing a key breaks the rule; a record that is no row does not count
        counted = key
        if unsound is not None:
            counted = ibis.ifelse(typed[unsound].isnull(), key, ibis.null("string"))
        rows = counted.count().over(group_by=key)
        checks.append(Check(table.unique, Rule.DUPLICATE_KEY, key.notnull() & (rows > 1)))
    if Rule.END_NOT_AFTER_START in table.extra_rules:
        for name in END_COLUMNS:
            if name in given:
                broken = value[name] <= value["start_date"]
                checks.append(Check(name, Rule.END_NOT_AFTER_START, broken))
    if Rule.RESOLVED_BEFORE_CREATED in table.extra_rules and "resolved_at" in given:
        broken = value["resolved_at"] < value["created_at"]
        checks.append(Check("resolved_at", Rule.RESOLVED_BEFORE_CREATED, broken))
    if table.account_fk and known_accounts is not None:
        account = value["account_id"]
        known = account.isin(known_accounts["account_id"])
        checks.append(
            Check("account_id", Rule.UNKNOWN_ACCOUNT, account.notnull() & ~known, keep=known)
        )
    order = {c.name: i for i, c in enumerate(table.columns)}
    rules = list(Rule)
    return sorted(checks, key=lambda c: (order[c.column], rules.index(c.rule)))


@dataclass(frozen=True)
class TableChecks:
    """The checks of one source table, as Ibis expressions.

    Attributes
    ----------
    table
        The contract table.
    typed
        The source with each contract column's typed value added as ``__cr_v<i>``
        (and, for numeric columns, intermediate ``__cr_n<i>`` columns).
    checks
        Every check, in contract column order and rule order; a malformed record's
        check (column ``""``) comes first.
    """

    table: Table
    typed: ir.Table
    checks: tuple[Check, ...]

    def flags(self) -> list[ir.BooleanValue]:
        """Return one never-NULL flag per check, in the order of :attr:`checks`."""
        return [c.broken.fill_null(False) for c in self.checks]

    def flagged(self) -> ir.Table:
        """Return :attr:`typed` with ``__cr_k<i>``, whether a row breaks check ``i``."""
        return self.typed.mutate(**{FLAG.format(i): flag for i, flag in enumerate(self.flags())})

    def broken_rows(self, columns: Sequence[str]) -> ir.Table:
        """Return ``columns`` and the flags of the rows breaking a rule."""
        flagged = self.flagged()
        names = [FLAG.format(i) for i in range(len(self.checks))]
        any_broken = reduce(lambda a, b: a | b, [flagged[n] for n in names], ibis.literal(False))
        return flagged.filter(any_broken).select(*columns, *names)

    def valid(self) -> ir.Table:
        """Return the rows that keep every rule, in contract columns and types."""
        plain = [~c.broken.fill_null(False) for c in self.checks if c.keep is None]
        keeps = [c.keep for c in self.checks if c.keep is not None]
        rows = self.typed.filter(*plain, *keeps) if plain or keeps else self.typed
        return rows.select(
            **{c.name: rows[VALUE.format(i)] for i, c in enumerate(self.table.columns)}
        )


def check_table(
    name: str,
    source: ir.Table,
    *,
    engine: Engine,
    known_accounts: ir.Table | None = None,
    unsound: str | None = None,
) -> TableChecks:
    """Build the checks of contract table ``name`` over a source table.

    Parameters
    ----------
    name
        The contract table.
    source
        The table as the source gives it: its own column names and types (text from
        CSV, typed from Parquet or a database), possibly with more columns.
    engine
        The engine the expressions will be compiled for.
    known_accounts
        The valid accounts (a table with ``account_id``): rows of a table with an
        ``account_id`` foreign key whose account is not among them break
        ``unknown_account``; ``None`` skips the rule (for ``accounts`` itself).
    unsound
        A column of ``source`` holding the raw text of a record the reader could not
        split into the header's columns (NULL for sound rows). Such a record breaks
        ``malformed_line`` and nothing else, and does not count as a duplicate key.

    Returns
    -------
    TableChecks
        The typed values, the checks and the selections built from them.
    """
    table = TABLES[name]
    given = [(i, c) for i, c in enumerate(table.columns) if c.name in source.columns]
    numbers = {
        _NUMBER.format(i): _number(source[c.name], engine)
        for i, c in given
        if c.kind in (Kind.INTEGER, Kind.FLOAT)
    }
    # numbers first: the typed values and the range checks read them, computed once
    staged = source.mutate(**numbers) if numbers else source
    parsed = {i: _parsed(c, staged, i, engine) for i, c in given}
    typed = staged.mutate(
        **{
            VALUE.format(i): parsed.get(i, ibis.null(_IBIS_TYPES[c.kind]))
            for i, c in enumerate(table.columns)
        }
    )
    checks = _table_checks(
        table, typed, known_accounts=known_accounts, unsound=unsound, engine=engine
    )
    if unsound is not None:
        malformed = typed[unsound].notnull()
        checks = [
            Check("", Rule.MALFORMED_LINE, malformed),
            *(Check(c.column, c.rule, c.broken.fill_null(False) & ~malformed) for c in checks),
        ]
    return TableChecks(table, typed, tuple(checks))


def valid_values(name: str, source: ir.Table, *, engine: Engine) -> ir.Table:
    """Return contract table ``name``'s columns of ``source`` rows known to keep every rule.

    The same values as :meth:`TableChecks.valid`, without evaluating a check: for a
    view over a source whose broken rows were already set aside.
    """
    table = TABLES[name]
    return source.select(**{c.name: _direct(c, source, engine) for c in table.columns})
