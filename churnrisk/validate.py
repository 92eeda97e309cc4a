"""Load a data source into a validated :class:`~churnrisk.dataset.Dataset`.

:func:`load` reads a folder of ``<table>.csv`` / ``<table>.parquet`` files or a DuckDB
database file, applies every rule of :mod:`churnrisk.contract`, lists each problem row by
row and quarantines the rows that break a rule. Nothing is silently dropped or coerced:
a row is either valid and kept, or listed in the report (and written to the quarantine
folder when one is given).

The work is set-based in DuckDB. CSV files are read with every column as text so the
reader coerces nothing; parquet and DuckDB columns keep their types. The rules, and
which texts are read as timestamps, dates and numbers, are :mod:`churnrisk.checks`'s
Ibis expressions, the ones the Spark loader runs too; this module reads the sources,
numbers the rows, finds malformed CSV records and writes the report and the quarantine
files. Every source is read in file order (DuckDB's
``preserve_insertion_order``), which gives each row its number:
``row_number() OVER ()`` over the CSV or DuckDB scan (a streaming window, in scan order)
and ``file_row_number`` for parquet.

A CSV record that cannot be split into the header's columns (too many or too few
fields, an unterminated quote, text after a closing quote, a record over DuckDB's 2 MB
line limit) does not stop the load: the reader skips it (``ignore_errors``) and records
it in a rejects table (``store_rejects``; every scan does, since DuckDB 2.0 with
``ignore_errors`` alone also drops every record after one with text after a closing
quote), and it becomes one ``malformed_line`` problem. Skipped records would shift the numbers
of the rows after them, so the numbers are corrected: with the data row numbers
``e_1 < e_2 < ...`` of the malformed records, the accepted row at scan position ``r``
is row ``r + #{j : e_j - j < r}`` (an as-of join). DuckDB numbers a rejected record by
counting the header, each record and each blank line once (a record spanning several
physical lines counts once); when a quote or a blank line comes before the last
rejected record, one pass of Python's ``csv`` reader over the file up to that record
turns those numbers into data row numbers and physical line numbers. A clean file costs
nothing extra: the rejects table of its scan is empty.

Timestamps may be naive (taken as UTC), end in ``Z`` or carry a numeric offset, mixed
within one file (:data:`churnrisk.checks.TIMESTAMP_TEXT`); they are converted to UTC and
stored as naive ``TIMESTAMP`` values meaning UTC. The session time zone of the returned
connection is UTC.

Large tables stay out of core: ``events`` read from parquet or from a DuckDB file is a
view over the source (over Parquet, the rows whose file row number was not set aside;
over a DuckDB table, the rows that pass the checks, evaluated at each query); every
other table is materialised in an in-memory DuckDB database that spills to a private
temporary folder when it outgrows memory.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import duckdb
import ibis
import ibis.expr.types as ir
from ibis.backends.sql.datatypes import DuckDBType

from churnrisk.causes import Cause, diagnose
from churnrisk.checks import FLAG, Check, check_table, schema, valid_values
from churnrisk.contract import TABLES, Rule, Table
from churnrisk.dataset import Dataset, empty_table_sql, quote
from churnrisk.errors import DataError

__all__ = [
    "LoadResult",
    "Problem",
    "TableReport",
    "UnusableDataError",
    "ValidationReport",
    "check_columns",
    "csv_columns",
    "csv_unsplittable_line",
    "end_date_note",
    "exit_code_of",
    "extra_columns_warning",
    "load",
    "unusable_message",
    "unusable_tables",
]

_DUCKDB_SUFFIXES = (".duckdb", ".db")
_SOURCE_DB = "_churnrisk_source"
_HEAD_BYTES = 1 << 20
_SUSPECT_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}
_MALFORMED_KINDS = frozenset(
    {"MISSING COLUMNS", "TOO MANY COLUMNS", "UNQUOTED VALUE", "LINE SIZE OVER MAXIMUM"}
)
"""DuckDB reject types that make a CSV record a ``malformed_line`` (the rest are fatal)."""
_FIELD_COUNT_KINDS = frozenset({"MISSING COLUMNS", "TOO MANY COLUMNS"})
_VALUE_CHARS = 500
_BLANK_LINE = re.compile(rb"\n\r?\n|\r\r")

# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Problem:
    """One broken rule in one row.

    Attributes
    ----------
    table
        Contract table name.
    row
        1-based data row number in the source (header and blank lines not counted,
        malformed CSV records counted; parquet: file row number; DuckDB table: scan
        order).
    column
        The column the rule concerns; ``""`` for ``malformed_line``, which concerns
        the whole record.
    rule
        The rule that was broken.
    value
        The offending value as text, ``None`` when the value was empty; for
        ``malformed_line`` the raw text of the record (line breaks before and after it
        removed), cut to its first 500 characters.
    """

    table: str
    row: int
    column: str
    rule: Rule
    value: str | None


@dataclass(frozen=True)
class TableReport:
    """Row counts of one table the source provided; ``rows == valid + quarantined``."""

    rows: int
    valid: int
    quarantined: int


@dataclass(frozen=True)
class ValidationReport:
    """What :func:`load` found.

    Attributes
    ----------
    tables
        Row counts per table the source provided, in contract order.
    problems
        Every broken rule, ordered by table, row, column and rule. A row with several
        problems appears once per problem (and is quarantined once).
    absent
        Optional tables the source did not provide.
    warnings
        Non-fatal notes (ignored columns, files or tables; empty optional tables).
    causes
        The problems grouped by cause (:func:`churnrisk.causes.diagnose`), one per
        table, column, rule and shape of value, largest first within each table.
    """

    tables: dict[str, TableReport] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    causes: list[Cause] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """Return 2 when a required table has no valid row, 1 when rows were set aside."""
        return exit_code_of(self.tables)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON-serialisable data.

        Returns
        -------
        dict
            ``{"tables": {name: {"rows", "valid", "quarantined"}}, "causes": [...],
            "problems": [{"table", "row", "column", "rule", "value"}]}`` with ``value`` a
            string or ``None``; causes as :meth:`churnrisk.causes.Cause.to_dict`.
        """
        return {
            "tables": {
                name: {"rows": t.rows, "valid": t.valid, "quarantined": t.quarantined}
                for name, t in self.tables.items()
            },
            "causes": [c.to_dict() for c in self.causes],
            "problems": [
                {
                    "table": p.table,
                    "row": p.row,
                    "column": p.column,
                    "rule": str(p.rule),
                    "value": p.value,
                }
                for p in self.problems
            ],
        }


@dataclass(frozen=True)
class LoadResult:
    """The validated data set and the report of what was kept and quarantined."""

    dataset: Dataset
    report: ValidationReport


class UnusableDataError(DataError):
    """Validation left a required table without a single valid row.

    ``report`` is the whole validation report (its rows were quarantined as asked), so
    a caller can still show what was set aside and why.
    """

    def __init__(self, message: str, report: Any) -> None:
        super().__init__(message)
        self.report = report


def unusable_tables(tables: Mapping[str, TableReport]) -> list[str]:
    """Return the required tables that have rows but not one valid row."""
    return [
        name for name, t in tables.items() if TABLES[name].required and t.rows > 0 and t.valid == 0
    ]


def end_date_note(
    *, rows: int, ended: int, future: int, with_term_end: int, last_day: Any
) -> str | None:
    """Say in one line what the subscriptions' dates mean when renewal timing is off.

    ``end_date`` is read as the day a row stopped paying, ``term_end`` as the renewal
    date known at signing (DESIGN section 1). Without any ``term_end``, two shapes tell
    which export this is: end dates after the last observed day cannot be stops, so
    they are term ends in the wrong column; end dates only on some rows, none ahead,
    are a cancellation-dated export (Stripe's ``ended_at``, a CRM's churn date). Either
    way the renewal-timing features are off, and the line says how to turn them on.

    Parameters
    ----------
    rows, ended, future, with_term_end
        Valid subscription rows; those with an ``end_date``; those whose ``end_date`` is
        after the end of observation; those with a ``term_end``.
    last_day
        The last day observed.
    """
    if with_term_end or not rows or not ended:
        return None
    if future:
        return (
            f"subscriptions.end_date: {future:,} of {rows:,} rows stop after the last day"
            f" observed ({last_day}), so they are term ends known at signing, not stops;"
            " they are read only as stops and renewal timing is off: give them as term_end"
            " too"
        )
    if ended < rows:
        return (
            f"subscriptions.end_date is set only on the {ended:,} of {rows:,} rows that"
            " stopped, as in a cancellation-dated export: it is read as the day each row"
            " stopped, and renewal timing is off: add term_end (the renewal date known at"
            " signing) to turn it on"
        )
    return None


def _end_date_note(ds: Dataset) -> str | None:
    """Return :func:`end_date_note` of a loaded data set's subscriptions."""
    from churnrisk.dataset import observation_end

    end = observation_end(ds)
    ((rows, ended, future, with_term_end),) = ds.con.execute(
        "SELECT count(*), count(end_date), count(*) FILTER (WHERE end_date > ?),"
        " count(term_end) FROM subscriptions",
        [end],
    ).fetchall()  # fetchall: a pending result would block the connection's next relation
    return end_date_note(
        rows=int(rows),
        ended=int(ended),
        future=int(future),
        with_term_end=int(with_term_end),
        last_day=end - timedelta(days=1),
    )


def exit_code_of(tables: Mapping[str, TableReport]) -> int:
    """Return 2 when a required table has no valid row, 1 when rows were set aside, else 0."""
    if unusable_tables(tables):
        return 2
    return 1 if any(t.quarantined for t in tables.values()) else 0


def unusable_message(tables: Mapping[str, TableReport], causes: Sequence[Cause] = ()) -> str:
    """Say which required table has no valid row left, its main cause and what to do."""
    names = unusable_tables(tables)
    parts = []
    for name in names:
        main = next((c for c in causes if c.table == name), None)
        why = f"; the main cause: {main.brief}" if main else ""
        parts.append(
            f"required table {name!r} has no valid row left: all {tables[name].rows:,}"
            f" rows were set aside{why}"
        )
    return (
        "; ".join(parts)
        + "; fix the export and load it again (`churnrisk validate` lists every cause)"
    )


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _Source:
    """One contract table as the source provides it.

    ``scan`` is a relation of the source columns in file order; ``numbered`` adds the
    1-based row number ``_row``. A CSV scan skips malformed records and lists them in
    the temporary tables ``rejects`` (errors, scans), once per scan.
    """

    table: str
    fmt: Literal["csv", "parquet", "duckdb"]
    where: str
    scan: str
    numbered: str
    types: dict[str, str]
    rejects: tuple[str, str] | None = None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _utf8_error(path: Path) -> DataError | None:
    """Return a DataError locating the first byte of ``path`` that is not UTF-8."""
    offset, line, pending = 0, 1, b""
    with path.open("rb") as fh:
        while True:
            chunk = fh.read(_HEAD_BYTES)
            data = pending + chunk
            try:
                _, used = codecs.utf_8_decode(data, "strict", not chunk)
            except UnicodeDecodeError as err:
                bad = offset + err.start
                line += data.count(b"\n", 0, err.start)
                return DataError(
                    f"{path} is not UTF-8: byte 0x{data[err.start]:02x} at byte offset {bad} "
                    f"(line {line}) cannot be decoded; re-save the file as UTF-8"
                )
            line += data.count(b"\n", 0, used)
            offset += used
            pending = data[used:]
            if not chunk:
                return None


def _csv_header(path: Path) -> tuple[list[str], bool]:
    """Read the header of a CSV file; return its column names and whether rows follow."""
    with path.open("rb") as fh:
        head = fh.read(_HEAD_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    try:
        text, _ = codecs.utf_8_decode(head, "strict", False)
    except UnicodeDecodeError as err:
        located = _utf8_error(path)
        raise (located or DataError(f"{path} is not UTF-8; re-save it as UTF-8")) from err
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
    except csv.Error as err:  # a name over the csv module's 131,072 characters
        raise DataError(f"{path} has no usable header ({err}); check the first line") from err
    try:
        has_rows = any(any(cell.strip() for cell in record) for record in reader)
    except csv.Error:  # a value over the csv module's 131,072 characters: a row
        has_rows = True
    if len(header) == 1:
        for char, name in _SUSPECT_DELIMITERS.items():
            if char in header[0]:
                raise DataError(
                    f"{path} looks {name}-delimited; churnrisk reads comma-separated files: "
                    f"re-export it with ',' as the delimiter"
                )
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(
                f"{path}: column {name!r} appears twice in the header; rename or remove one of them"
            )
        seen.add(name)
    if not header or header == [""]:
        raise DataError(f"{path} has no header; the first line must name the columns")
    return header, has_rows


def _csv_source(path: Path, name: str) -> tuple[_Source, bool]:
    """Describe a CSV table; also return whether the file has data rows after the header."""
    header, has_rows = _csv_header(path)
    columns = "{" + ", ".join(f"{_literal(c)}: 'VARCHAR'" for c in header) + "}"
    options = (
        f"auto_detect=false, header=true, delim=',', quote='\"', escape='\"', "
        f"strict_mode=true, columns={columns}, ignore_errors=true"
    )
    rejects = (f"_cr_rejects_{name}", f"_cr_reject_scans_{name}")
    # Every scan stores its rejects: with ignore_errors alone, DuckDB 2.0 also drops
    # every record after one with text after a closing quote (measured).
    scan = (
        f"read_csv({_literal(str(path))}, {options}, store_rejects=true, "
        f"rejects_table={_literal(rejects[0])}, rejects_scan={_literal(rejects[1])})"
    )
    source = _Source(
        table=name,
        fmt="csv",
        where=str(path),
        scan=scan,
        numbered=f"(SELECT row_number() OVER () AS _row, * FROM {scan})",
        types=dict.fromkeys(header, "VARCHAR"),
        rejects=rejects,
    )
    return source, has_rows


def csv_columns(path: Path) -> list[str]:
    """Return the column names of a CSV file's header, checked as :func:`load` checks them.

    Raises
    ------
    DataError
        When the head of the file is not UTF-8, the file has no header, looks delimited
        by something other than a comma, or names a column twice.
    """
    return _csv_header(Path(path))[0]


def csv_unsplittable_line(path: Path) -> tuple[int, str, str] | None:
    """Find the first record of a CSV file that is malformed by more than its field count.

    Such a record has an unterminated quote, text after a closing quote or more than
    DuckDB's 2 MB per record; a reader that only checks the number of fields (Spark's)
    cannot set it aside.

    Returns
    -------
    tuple of (int, str, str) or None
        The physical line where the record starts, DuckDB's error message and the raw
        text of the record; ``None`` when every record is sound or only has too many or
        too few fields.

    Raises
    ------
    DataError
        When the file is not UTF-8 or its header is unusable (see :func:`csv_columns`).
    """
    source, _ = _csv_source(Path(path), "csv")
    with duckdb.connect() as con:
        try:
            con.execute(f"SELECT count(*) FROM {source.numbered}").fetchall()
            malformed = _malformed(con, source, [])
        except duckdb.Error as err:
            raise _read_error(err, source) from err
    others = [m for m in malformed if m.kind not in _FIELD_COUNT_KINDS]
    return (others[0].line, others[0].error, others[0].text) if others else None


def _parquet_source(con: duckdb.DuckDBPyConnection, path: Path, table: Table) -> _Source:
    scan = f"read_parquet({_literal(str(path))})"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
    except duckdb.Error as err:
        raise DataError(
            f"{path} cannot be read as parquet ({_first_line(err)}); re-export the table"
        ) from err
    numbered = (
        f"(SELECT file_row_number + 1 AS _row, * EXCLUDE (file_row_number) FROM "
        f"read_parquet({_literal(str(path))}, file_row_number=true))"
    )
    types = {row[0]: row[1] for row in described}
    return _Source(table.name, "parquet", str(path), scan, numbered, types)


def _duckdb_source(con: duckdb.DuckDBPyConnection, name: str, where: str) -> _Source:
    scan = f"{_SOURCE_DB}.main.{quote(name)}"
    described = con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()
    numbered = f"(SELECT row_number() OVER () AS _row, * FROM {scan})"
    types = {row[0]: row[1] for row in described}
    return _Source(name, "duckdb", f"{where} table {name}", scan, numbered, types)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _read_error(err: duckdb.Error, source: _Source) -> DataError:
    """Turn a DuckDB read error into a one-line DataError about ``source``."""
    text = str(err)
    if source.fmt == "csv":
        path = Path(source.where)
        if "unicode" in text.lower() or "utf-8" in text.lower():
            located = _utf8_error(path)
            if located is not None:
                return located
        line = re.search(r"CSV Error on Line: (\d+)", text)
        if line:
            return DataError(
                f"{path} line {line.group(1)} cannot be read ({_first_line(err)}); fix that line"
            )
    return DataError(f"{source.where} cannot be read ({_first_line(err)}); check the file")


def _folder_sources(
    con: duckdb.DuckDBPyConnection, folder: Path, warnings: list[str]
) -> dict[str, _Source | None]:
    """Find the contract tables of a folder; ``None`` marks a provided empty table."""
    found: dict[str, _Source | None] = {}
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    for name, table in TABLES.items():
        csv_path, pq_path = folder / f"{name}.csv", folder / f"{name}.parquet"
        if csv_path.is_file() and pq_path.is_file():
            raise DataError(
                f"table {name!r} is given twice in {folder} ({csv_path.name} and "
                f"{pq_path.name}); keep only one of them"
            )
        path = csv_path if csv_path.is_file() else pq_path if pq_path.is_file() else None
        if path is None:
            if table.required:
                listing = ", ".join(files) or "no files"
                raise DataError(
                    f"required table {name!r} is missing: no {name}.csv or {name}.parquet "
                    f"in {folder} (found: {listing}); add it"
                )
            continue
        if path.stat().st_size == 0:
            _note_empty(table, f"{path} is empty (0 bytes)", warnings)
            found[name] = None
            continue
        if path.suffix == ".csv":
            source, has_rows = _csv_source(path, name)
            empty = f"{path} has a header but no data rows"
        else:
            source = _parquet_source(con, path, table)
            has_rows, empty = _count(con, source) > 0, f"{path} has no rows"
        _check_columns(table, source, str(path))
        if not has_rows:
            _note_empty(table, empty, warnings)
        found[name] = source if has_rows else None
    known = {f"{n}.{ext}" for n in TABLES for ext in ("csv", "parquet")}
    ignored = [f for f in files if f.endswith((".csv", ".parquet")) and f not in known]
    if ignored:
        warnings.append(
            f"{folder}: file(s) {', '.join(ignored)} are not contract tables and were ignored"
        )
    return found


def _note_empty(table: Table, what: str, warnings: list[str]) -> None:
    """Raise for an empty required table; note an empty optional one in ``warnings``."""
    if table.required:
        raise DataError(
            f"{what}; required table {table.name!r} needs a header and at least one row"
        )
    warnings.append(f"{what}; optional table {table.name!r} is treated as having no rows")


def _count(con: duckdb.DuckDBPyConnection, source: _Source) -> int:
    try:
        row = con.execute(f"SELECT count(*) FROM {source.scan}").fetchone()
    except duckdb.Error as err:
        raise _read_error(err, source) from err
    return int(row[0]) if row else 0


def _database_sources(
    con: duckdb.DuckDBPyConnection, path: Path, warnings: list[str]
) -> dict[str, _Source | None]:
    try:
        con.execute(f"ATTACH {_literal(str(path))} AS {_SOURCE_DB} (TYPE duckdb, READ_ONLY)")
    except duckdb.Error as err:
        raise DataError(
            f"{path} cannot be opened as a DuckDB database ({_first_line(err)}); "
            f"pass a DuckDB file or a folder of CSV/parquet files"
        ) from err
    names = [
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_catalog = ? AND table_schema = 'main' ORDER BY table_name",
            [_SOURCE_DB],
        ).fetchall()
    ]
    found: dict[str, _Source | None] = {}
    for name, table in TABLES.items():
        if name not in names:
            if table.required:
                raise DataError(
                    f"required table {name!r} is missing from {path} (tables found: "
                    f"{', '.join(names) or 'none'}); add it"
                )
            continue
        source = _duckdb_source(con, name, str(path))
        _check_columns(table, source, source.where)
        has_rows = _count(con, source) > 0
        if not has_rows:
            _note_empty(table, f"{source.where} has no rows", warnings)
        found[name] = source if has_rows else None
    ignored = [n for n in names if n not in TABLES]
    if ignored:
        warnings.append(
            f"{path}: table(s) {', '.join(ignored)} are not contract tables and were ignored"
        )
    return found


def _check_columns(table: Table, source: _Source, where: str) -> None:
    check_columns(table, list(source.types), where)


def _plain_name(name: str) -> str:
    """Return a column name as people mean it: case, spaces and punctuation ignored."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _near_names(table: Table, found: Sequence[str]) -> dict[str, str]:
    """Map contract columns the source lacks to found names that differ only in form.

    The form is case, spaces and punctuation: ``Account_ID`` or ``account id`` for
    ``account_id``.
    """
    plain = {_plain_name(c): c for c in found}
    return {
        col.name: plain[_plain_name(col.name)]
        for col in table.columns
        if col.name not in found and _plain_name(col.name) in plain
    }


def check_columns(table: Table, found: Sequence[str], where: str) -> None:
    """Raise DataError when a required column is missing, naming near misses.

    A column that differs from the contract's name only in case, spaces or punctuation
    is not read in its place (names are matched exactly, never guessed): the message
    says which column to rename.
    """
    missing = [c for c in table.required_columns if c not in found]
    if not missing:
        return
    near = _near_names(table, found)
    renames = [f"{near[c]!r} to {c!r}" for c in missing if c in near]
    if renames:
        raise DataError(
            f"table {table.name!r} ({where}) names its column(s) differently from the"
            f" contract (names are exact, case included): rename {', '.join(renames)}"
        )
    raise DataError(
        f"table {table.name!r} ({where}) lacks required column(s) {', '.join(missing)}; "
        f"columns found: {', '.join(found)}; add or rename the column(s)"
    )


def extra_columns_warning(table: Table, found: Sequence[str], where: str) -> str | None:
    """Return the warning about source columns the contract does not read, if any.

    An optional column written differently from the contract (``Segment`` for
    ``segment``) is named with the rename that would make it count.
    """
    known = {col.name for col in table.columns}
    extra = [c for c in found if c not in known]
    if not extra:
        return None
    near = {v: k for k, v in _near_names(table, found).items()}
    renames = [f"{c!r} to {near[c]!r}" for c in extra if c in near]
    hint = f"; to use them, rename {', '.join(renames)}" if renames else ""
    return (
        f"{where}: column(s) {', '.join(extra)} are not in the contract of {table.name!r}"
        f" and were ignored{hint}"
    )


# --------------------------------------------------------------------------- malformed CSV


@dataclass(frozen=True)
class _Rejected:
    """One CSV record DuckDB's reader rejected.

    ``line`` is DuckDB's number of the record: the header, each record and each blank
    line count once (a record spanning several physical lines counts once). ``byte`` is
    the byte offset where the error was found, at or after the start of the record.
    """

    line: int
    kind: str
    error: str
    text: str
    byte: int


@dataclass(frozen=True)
class _Malformed:
    """A malformed CSV record: its data row number, the physical line where it starts."""

    row: int
    line: int
    kind: str
    error: str
    text: str


def _rejected(con: duckdb.DuckDBPyConnection, source: _Source) -> list[_Rejected]:
    """Return the records the scans of ``source`` rejected, in file order.

    DuckDB lists a record once per scan and once per column it found missing; each
    record is returned once, with its first error. The rejects tables are dropped:
    call this after the last scan.
    """
    if source.rejects is None:
        return []
    errors, scans = source.rejects
    listed = f"SELECT count(*) FROM duckdb_tables() WHERE table_name = {_literal(errors)}"
    if not _scalar(con, listed):
        # no query has scanned the file yet: scan once to list the rejects
        con.execute(f"SELECT count(*) FROM {source.numbered}").fetchall()
    rows = con.execute(
        f"SELECT line, arg_min(CAST(error_type AS VARCHAR), column_idx), "
        f"arg_min(error_message, column_idx), arg_min(csv_line, column_idx), "
        f"max(byte_position) FROM {errors} GROUP BY line ORDER BY line"
    ).fetchall()
    con.execute(f"DROP TABLE {errors}")
    con.execute(f"DROP TABLE {scans}")
    return [
        _Rejected(
            line=int(line),
            kind=str(kind),
            error=(str(error).strip().splitlines() or [""])[0],
            # a record starts after the line break of the record (or blank line) before
            text=str(text or "").strip("\r\n"),
            byte=int(byte or 0),
        )
        for line, kind, error, text, byte in rows
    ]


def _quote_or_blank_line(path: Path, until: int) -> bool:
    """Whether the first ``until`` bytes of ``path`` hold a quote or an empty line."""
    tail, read = b"", 0
    with path.open("rb") as fh:
        while read < until:
            chunk = fh.read(min(16 * _HEAD_BYTES, until - read))
            if not chunk:
                break
            read += len(chunk)
            if b'"' in chunk or _BLANK_LINE.search(tail + chunk):
                return True
            tail = chunk[-2:]
    return False


def _record_positions(
    path: Path, lines: list[int], until: int
) -> tuple[dict[int, tuple[int, int]], bool]:
    """Map DuckDB's numbers of rejected records to (data row number, physical line).

    Without a quote (so no record spans lines) or a blank line in the first ``until``
    bytes, DuckDB's record ``n`` is data row ``n - 1`` and starts on line ``n``.
    Otherwise Python's ``csv`` reader, which splits records as DuckDB does, walks the
    file up to the last of ``lines``. The flag is false when that walk failed or
    disagreed with DuckDB; DuckDB's numbers are then returned as if no quote or blank
    line came first.
    """
    simple = {n: (n - 1, n) for n in lines}
    if not lines or not _quote_or_blank_line(path, until + 1):
        return simple, True
    wanted, last = set(lines), max(lines)
    found: dict[int, tuple[int, int]] = {}
    index = blanks = 0
    start = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            for record in reader:
                index += 1
                if not record:
                    blanks += 1
                elif index in wanted:
                    found[index] = (index - 1 - blanks, start)
                if index >= last:
                    break
                start = reader.line_num + 1
    except csv.Error:  # a field over the csv module's size limit, a NUL byte
        return simple, False
    if len(found) != len(wanted):
        return simple, False
    return found, True


def _malformed(
    con: duckdb.DuckDBPyConnection, source: _Source, warnings: list[str]
) -> list[_Malformed]:
    """Return the malformed records of a CSV source in file order.

    Raises
    ------
    DataError
        When a record was rejected for a reason that makes the file unusable: it is not
        UTF-8, or DuckDB reports an error this loader does not know.
    """
    rejected = _rejected(con, source)
    if not rejected:
        return []
    path = Path(source.where)
    if any(r.kind == "INVALID ENCODING" for r in rejected):
        located = _utf8_error(path)
        raise located or DataError(f"{path} is not UTF-8; re-save it as UTF-8")
    positions, exact = _record_positions(
        path, [r.line for r in rejected], max(r.byte for r in rejected)
    )
    for r in rejected:
        if r.kind not in _MALFORMED_KINDS:
            raise DataError(
                f"{path} line {positions[r.line][1]} cannot be read ({r.error}); fix that line"
            )
    if not exact:
        warnings.append(
            f"{path}: Python's csv reader could not retrace the file, so the row and line "
            f"numbers from the first malformed line on leave out the blank lines and quoted "
            f"line breaks before it"
        )
    return [
        _Malformed(*positions[r.line], kind=r.kind, error=r.error, text=r.text) for r in rejected
    ]


def _renumber(con: duckdb.DuckDBPyConnection, bad: str, malformed: str) -> None:
    """Give the rows of table ``bad`` their data row numbers among all records.

    ``bad._row`` is the position among the accepted records; ``malformed._row`` holds the
    data row numbers ``e_1 < e_2 < ...`` of the records the reader skipped. The accepted
    row at position ``r`` is row ``r + #{j : e_j - j < r}``: ``e_j - j`` does not
    decrease with ``j``, so the count is the largest ``j`` whose ``e_j - j < r``, found
    by an as-of join.
    """
    renumbered = f"{bad}_renumbered"
    con.execute(
        f"CREATE TEMP TABLE {renumbered} AS "
        f"WITH skipped AS (SELECT _row - row_number() OVER (ORDER BY _row) AS k, "
        f"row_number() OVER (ORDER BY _row) AS j FROM {malformed}), "
        f"steps AS (SELECT k, max(j) AS j FROM skipped GROUP BY k) "
        f"SELECT b._row + coalesce(s.j, 0) AS _row, b.* EXCLUDE (_row) "
        f"FROM {bad} AS b ASOF LEFT JOIN steps AS s ON b._row > s.k"
    )
    con.execute(f"DROP TABLE {bad}")
    con.execute(f"ALTER TABLE {renumbered} RENAME TO {bad}")


# --------------------------------------------------------------------------- rules


def _relation(con: duckdb.DuckDBPyConnection, source: _Source, *, numbered: bool) -> ir.Table:
    """Return the source scan (with ``_row`` when ``numbered``) as an Ibis table.

    The scan is a temporary view the compiled checks read by name; its schema is given,
    not inferred, since inferring it would run the scan.
    """
    view = f"_cr_{'rows' if numbered else 'scan'}_{source.table}"
    select = source.numbered if numbered else source.scan
    con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {select}")
    types = {name: DuckDBType.from_string(kind) for name, kind in source.types.items()}
    return ibis.table({"_row": "int64", **types} if numbered else types, name=view)


def _sql(expr: ir.Table) -> str:
    """Compile an Ibis expression to DuckDB SQL."""
    return str(ibis.to_sql(expr, dialect="duckdb", pretty=False))


_ACCOUNTS = ibis.table(schema("accounts"), name="accounts")
"""The valid accounts, for the unknown_account rule (read once ``accounts`` is made)."""


# --------------------------------------------------------------------------- loading


def _open_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    spill = Path(tempfile.gettempdir()) / f"churnrisk-{uuid.uuid4().hex}"
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    # A library does not draw on the terminal. Under Jupyter without ipywidgets DuckDB
    # refuses to touch the setting at all; it cannot draw a bar there either.
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    con.execute(f"SET temp_directory = {_literal(str(spill))}")
    return con


@dataclass(frozen=True)
class _Checked:
    """What checking one table found."""

    report: TableReport
    problems: list[Problem]
    causes: list[Cause]
    set_aside_ids: frozenset[str]
    """The ``account_id`` values of the rows set aside (for the accounts table)."""


def _create_relations(
    con: duckdb.DuckDBPyConnection, source: _Source, bad: str, *, materialise: bool
) -> tuple[Check, ...]:
    """Create the table ``bad`` of the rows breaking a rule, then the table's relation.

    ``bad`` holds ``_row``, the source columns and one flag per check. The relation of
    the valid rows is a table, or (``materialise`` false) a view over the source.
    Where the row numbers are stable (a CSV or Parquet file, or a table made now), it
    keeps the rows whose number is not in ``bad``: an anti join on a small table is
    cheaper than checking each row again (and one compiled query fewer). A view over
    a DuckDB table checks the rows at each read.
    """
    name = source.table
    known = None if name == "accounts" else _ACCOUNTS
    numbered = _relation(con, source, numbered=True)
    checked = check_table(name, numbered, engine="duckdb", known_accounts=known)
    con.execute(f"CREATE TEMP TABLE {bad} AS {_sql(checked.broken_rows(['_row', *source.types]))}")
    listed = f"_churnrisk_quarantined_{name}"  # a view reads it after bad is dropped
    if materialise or source.fmt == "parquet":
        con.execute(f"CREATE TABLE {listed} AS SELECT _row FROM {bad}")
        kept = ibis.table({"_row": "int64"}, name=listed)
        rows = numbered.filter(~numbered["_row"].isin(kept["_row"]))
        clean, read = valid_values(name, rows, engine="duckdb"), "rows"
    else:
        scan = _relation(con, source, numbered=False)
        clean = check_table(name, scan, engine="duckdb", known_accounts=known).valid()
        read = "scan"
    kind = "TABLE" if materialise else "VIEW"
    con.execute(f"CREATE {kind} {quote(name)} AS {_sql(clean)}")
    if materialise:
        con.execute(f"DROP TABLE {listed}")
    for view in ("rows", "scan"):  # a view over the source keeps the one it reads
        if materialise or view != read:
            con.execute(f"DROP VIEW IF EXISTS _cr_{view}_{name}")
    return checked.checks


def _check_table(
    con: duckdb.DuckDBPyConnection,
    source: _Source,
    *,
    materialise: bool,
    quarantine_dir: Path | None,
    warnings: list[str],
    set_aside_accounts: frozenset[str] = frozenset(),
) -> _Checked:
    """Check one table, create its clean relation and return what it found."""
    name = source.table
    bad, skipped = f"_cr_bad_{name}", f"_cr_malformed_{name}"
    try:
        checks = _create_relations(con, source, bad, materialise=materialise)
        malformed = _malformed(con, source, warnings)  # after the last scan of a CSV file
        if malformed:
            con.execute(
                f"CREATE TEMP TABLE {skipped} AS SELECT unnest($rows) AS _row, "
                f"unnest($lines) AS _line, unnest($errors) AS _error, unnest($texts) AS _text",
                {
                    "rows": [m.row for m in malformed],
                    "lines": [m.line for m in malformed],
                    "errors": [m.error for m in malformed],
                    "texts": [m.text for m in malformed],
                },
            )
            _renumber(con, bad, skipped)
        broken = _scalar(con, f"SELECT count(*) FROM {bad}")
        if materialise:
            accepted = _scalar(con, f"SELECT count(*) FROM {quote(name)}") + broken
        else:
            accepted = _scalar(con, f"SELECT count(*) FROM {source.scan}")
    except duckdb.Error as err:
        raise _read_error(err, source) from err
    quarantined, rows = broken + len(malformed), accepted + len(malformed)
    problems = _problems(con, name, bad, checks, malformed)
    if quarantine_dir is not None:
        written = (bad if broken else None, skipped if malformed else None)
        _write_quarantine(con, quarantine_dir, source, checks, *written)
    report = TableReport(rows=rows, valid=rows - quarantined, quarantined=quarantined)
    causes = _causes(con, source, bad, problems, rows, set_aside_accounts) if problems else []
    ids: frozenset[str] = frozenset()
    if name == "accounts" and broken:
        listed = con.execute(f"SELECT DISTINCT CAST(account_id AS VARCHAR) FROM {bad}")
        ids = frozenset(str(r[0]) for r in listed.fetchall() if r[0] is not None)
    con.execute(f"DROP TABLE {bad}")
    if malformed:
        con.execute(f"DROP TABLE {skipped}")
    return _Checked(report, problems, causes, ids)


def _problems(
    con: duckdb.DuckDBPyConnection,
    name: str,
    bad: str,
    checks: Sequence[Check],
    malformed: Sequence[_Malformed],
) -> list[Problem]:
    """List the problems of the rows in table ``bad`` and of the malformed records."""
    problem_sql = " UNION ALL ".join(
        f"SELECT _row, {i} AS k, CAST({quote(c.column)} AS VARCHAR) AS v FROM {bad} "
        f"WHERE {FLAG.format(i)}"
        for i, c in enumerate(checks)
    )
    problems = [
        Problem(name, int(row), checks[k].column, checks[k].rule, value)
        for row, k, value in (
            con.execute(f"{problem_sql} ORDER BY _row, k").fetchall() if checks else []
        )
    ]
    if malformed:
        lines = [
            Problem(name, m.row, "", Rule.MALFORMED_LINE, m.text[:_VALUE_CHARS]) for m in malformed
        ]
        problems = sorted(problems + lines, key=lambda p: p.row)  # stable: rules keep order
    return problems


def _write_quarantine(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    source: _Source,
    checks: Sequence[Check],
    bad: str | None,
    skipped: str | None,
) -> None:
    """Write ``<table>.csv`` from table ``bad``, ``<table>.malformed.csv`` from ``skipped``.

    ``None`` for a table without such rows: its file, left by an earlier run, is removed.
    """
    name = source.table
    raw_columns = ", ".join(quote(c) for c in source.types)
    labels = ", ".join(
        f"CASE WHEN {FLAG.format(i)} THEN {_literal(c.label)} END" for i, c in enumerate(checks)
    )
    rows_sql = f"SELECT {raw_columns}, _row, concat_ws(';', {labels}) AS _problems FROM {bad}"
    _quarantine_file(con, folder / f"{name}.csv", rows_sql if bad else None)
    lines_sql = f"SELECT _row, _line, _error, _text FROM {skipped}"
    _quarantine_file(con, folder / f"{name}.malformed.csv", lines_sql if skipped else None)


def _causes(
    con: duckdb.DuckDBPyConnection,
    source: _Source,
    bad: str,
    problems: list[Problem],
    rows: int,
    set_aside_accounts: frozenset[str],
) -> list[Cause]:
    """Group a table's problems by cause, with the money its set-aside rows carry."""
    table, types = TABLES[source.table], source.types
    money = table.money if table.money in types else None
    account = "account_id" if table.account_fk and "account_id" in types else None
    picked = [c for c in (money, account) if c is not None]
    found: dict[int, tuple[Any, ...]] = {}
    if picked:
        cols = ", ".join(f"CAST({quote(c)} AS VARCHAR)" for c in picked)
        found = {
            int(r[0]): r[1:] for r in con.execute(f"SELECT _row, {cols} FROM {bad}").fetchall()
        }
    valid_money = None
    if money is not None:
        total = con.execute(f"SELECT sum({quote(money)}) FROM {quote(table.name)}").fetchone()
        valid_money = float(total[0]) if total and total[0] is not None else 0.0
    return diagnose(
        table.name,
        problems,
        table_rows=rows,
        money={row: v[0] for row, v in found.items()} if money is not None else None,
        valid_money=valid_money,
        set_aside_accounts=set_aside_accounts,
        account_of={row: v[-1] for row, v in found.items()} if account is not None else None,
    )


def _quarantine_file(con: duckdb.DuckDBPyConnection, target: Path, select: str | None) -> None:
    """Write ``select``'s rows, ordered by ``_row``, to the CSV ``target``; or remove it.

    ``None`` means nothing to quarantine: a file left by an earlier run must not outlive
    the rows it listed.
    """
    if select is None:
        target.unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    con.execute(
        f"COPY ({select} ORDER BY _row) TO {_literal(str(target))} (FORMAT csv, HEADER true)"
    )


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def load(source: Path, *, quarantine_dir: Path | None = None) -> LoadResult:
    """Load and validate a data source against the contract.

    Each row that breaks a rule of :mod:`churnrisk.contract` is listed in the report,
    once per broken rule, and kept out of the data set; nothing is coerced. Rules:
    ``missing_value`` (empty non-nullable column), ``unparseable`` (timestamp, date or
    number that cannot be read, or a date with a time of day other than midnight UTC;
    the texts read are those of :mod:`churnrisk.checks`),
    ``negative``, ``out_of_range``, ``not_integer``, ``duplicate_key`` (every row that
    shares an ``accounts.account_id`` or ``tickets.ticket_id`` is quarantined, since
    there is no way to know which of them is right), ``unknown_account`` (an
    ``account_id`` that is not among the valid accounts), ``end_not_after_start``
    (a subscription whose ``end_date <= start_date``), ``resolved_before_created``
    (a ticket resolved before it was opened, which would let a feature see it early)
    and ``malformed_line`` (a CSV record that cannot be split into the header's
    columns: too many or too few fields, an unterminated quote, text after a closing
    quote, over 2 MB). A malformed record is one problem with column ``""`` and the
    record's raw text as value; it counts in ``rows`` and ``quarantined`` and keeps
    its place in the row numbering, so every row keeps its true number. A file whose
    every data line is malformed loads with no valid rows and a warning.

    Parameters
    ----------
    source
        A folder of ``<table>.csv`` or ``<table>.parquet`` files (one file per table),
        or a DuckDB database file (``.duckdb`` / ``.db``) holding tables named as in the
        contract. CSV files must be UTF-8 and comma-separated with a header.
    quarantine_dir
        When given, each table with quarantined rows is written to
        ``<quarantine_dir>/<table>.csv``: the original values of those rows plus
        ``_row`` (the row number in the source) and ``_problems`` (``column:rule``
        joined by ``;``). Malformed CSV records go to ``<table>.malformed.csv``:
        ``_row`` (data row number), ``_line`` (physical line of the file where the
        record starts), ``_error`` (DuckDB's message) and ``_text`` (the raw record as DuckDB's
        reader kept it: its first 10,000 bytes).
        The folder is created when needed; for a table without such rows nothing is
        written and a file left there by an earlier run is removed.

    Returns
    -------
    LoadResult
        The data set (every contract table, optional columns the source lacks as
        nulls, absent optional tables empty) and the validation report. Timestamps are
        UTC, held as naive ``TIMESTAMP`` values. ``events`` read from parquet or DuckDB
        is a view over the source file, which must stay in place while the data set is
        used.

    Raises
    ------
    DataError
        When the input cannot be used at all: the source is missing or of an unknown
        kind, a required table or column is missing, a required table is empty (a
        header and no data line), a CSV file is not UTF-8, not comma-separated, has no
        header or names a column twice, or a table is given both as CSV and as parquet;
        :class:`UnusableDataError` (with the report) when a required table has rows but
        not one valid row. A malformed CSV line is not fatal (see ``malformed_line``
        above).
    """
    source = Path(source).expanduser().resolve()
    warnings: list[str] = []
    con = _open_connection()
    try:
        if source.is_dir():
            found = _folder_sources(con, source, warnings)
        elif source.is_file() and source.suffix.lower() in _DUCKDB_SUFFIXES:
            found = _database_sources(con, source, warnings)
        elif source.exists():
            raise DataError(
                f"{source} is neither a folder nor a DuckDB file (.duckdb, .db); pass a "
                f"folder of CSV/parquet files or a DuckDB database"
            )
        else:
            raise DataError(
                f"data source {source} does not exist; pass a folder of CSV/parquet files "
                f"or a DuckDB database file"
            )
        report = _validate(con, found, warnings, quarantine_dir)
        if unusable_tables(report.tables):
            raise UnusableDataError(unusable_message(report.tables, report.causes), report)
        dataset = Dataset(con=con, absent=frozenset(report.absent), source=str(source))
        note = _end_date_note(dataset)
        if note is not None:
            report.warnings.append(note)
    except BaseException:
        con.close()
        raise
    return LoadResult(dataset, report)


def _validate(
    con: duckdb.DuckDBPyConnection,
    found: dict[str, _Source | None],
    warnings: list[str],
    quarantine_dir: Path | None,
) -> ValidationReport:
    tables: dict[str, TableReport] = {}
    problems: list[Problem] = []
    causes: list[Cause] = []
    absent: list[str] = []
    set_aside_accounts: frozenset[str] = frozenset()
    for name, table in TABLES.items():
        if name not in found:
            absent.append(name)
            con.execute(f"CREATE TABLE {quote(name)} AS {empty_table_sql(name)}")
            continue
        src = found[name]
        if src is None:
            tables[name] = TableReport(rows=0, valid=0, quarantined=0)
            con.execute(f"CREATE TABLE {quote(name)} AS {empty_table_sql(name)}")
            continue
        extra = extra_columns_warning(table, list(src.types), src.where)
        if extra:
            warnings.append(extra)
        materialise = not (name == "events" and src.fmt in ("parquet", "duckdb"))
        checked = _check_table(
            con,
            src,
            materialise=materialise,
            quarantine_dir=quarantine_dir,
            warnings=warnings,
            set_aside_accounts=set_aside_accounts,
        )
        tables[name], found_problems = checked.report, checked.problems
        problems.extend(found_problems)
        causes.extend(checked.causes)
        set_aside_accounts |= checked.set_aside_ids
        malformed = sum(p.rule is Rule.MALFORMED_LINE for p in found_problems)
        if malformed and malformed == tables[name].rows:
            kind = "required" if table.required else "optional"
            warnings.append(
                f"{src.where}: every data line ({malformed:,}) is malformed and quarantined "
                f"(rule malformed_line); {kind} table {name!r} has no valid rows"
            )
    return ValidationReport(
        tables=tables, problems=problems, absent=absent, warnings=warnings, causes=causes
    )
