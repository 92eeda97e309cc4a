"""What every world shape shares: its calendar, its accounts' arrival, and the writing.

Days are integers counted from the first observed day (negative before it), times are
seconds after its midnight UTC, and a table is written batch by batch, in the contract's
column order, with only the tables and optional columns the shape's export holds.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from churnrisk.contract import TABLES, Kind

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DAY = 86_400
PRE_MONTHS = 36
"""Accounts existing at the start were created up to this many months before it."""


@dataclass(frozen=True)
class Shape:
    """One kind of world the generator makes.

    Attributes
    ----------
    name
        What ``--shape`` calls it.
    summary
        A few words for ``churnrisk generate --help``: the business and what drives churn.
    accounts, months
        Its default size.
    simulate
        ``simulate(rng, cal, world, lo, hi, first_ticket)`` returns the tables of accounts
        ``lo:hi`` (ticket ids numbered from ``first_ticket``).
    stream
        Its random streams: accounts are drawn from ``SeedSequence(seed, (0, *stream))``
        and batch ``b`` from ``(1, b, *stream)``, so shapes never share draws.
    id_prefix, id_width
        Account ids are ``id_prefix`` and at least ``id_width`` digits.
    activities
        Whether its export holds a small CS history of the first batch's accounts
        (:mod:`churnrisk.worlds.activities`), drawn from ``(3, *stream)`` once every
        other table is written.
    """

    name: str
    summary: str
    accounts: int
    months: int
    simulate: Callable[..., dict[str, pa.Table]]
    stream: tuple[int, ...] = ()
    id_prefix: str = "A"
    id_width: int = 0
    activities: bool = False


def add_months(day: date, months: int) -> date:
    """Return ``day`` moved by ``months`` calendar months, clipped to the month's end.

    Parameters
    ----------
    day
        The date to move.
    months
        Number of months to add (may be negative).

    Returns
    -------
    date
        The same day of the month ``months`` later, or that month's last day.
    """
    y, m = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(y, m + 1, min(day.day, calendar.monthrange(y, m + 1)[1]))


class Calendar:
    """Day and month arithmetic of one world; days are integers counted from ``start``."""

    def __init__(self, start: date, months: int) -> None:
        self.start = start
        self.end = add_months(start, months)
        self.months = months
        self.days = (self.end - start).days
        self.start_d = np.datetime64(start, "D")
        self.epoch_day = int(self.start_d.astype(np.int64))  # days since 1970-01-01
        base = np.datetime64(start, "M")
        # month starts for month index k in [-PRE_MONTHS, months + 14)
        self.k_lo = -PRE_MONTHS
        ks = np.arange(self.k_lo, months + 14)
        firsts = (base + ks).astype("datetime64[D]")
        self._month_start = (firsts - self.start_d).astype(np.int64)
        all_days = np.arange(self.days)
        self.dates = self.start_d + all_days
        self.weekday = (all_days + self.epoch_day + 3) % 7  # Monday = 0
        month_of = self.dates.astype("datetime64[M]")
        self.day_of_month = (self.dates - month_of.astype("datetime64[D]")).astype(np.int64) + 1
        self.month_index = (month_of - base).astype(np.int64)  # 0 = month holding start
        month_no = month_of.astype(np.int64) % 12 + 1
        self.holiday = ((month_no == 12) & (self.day_of_month >= 24)) | (
            (month_no == 1) & (self.day_of_month == 1)
        )

    def split(self, days: IntArray) -> tuple[IntArray, IntArray]:
        """Month index and day of month (1-31) of any day numbers."""
        dates = self.start_d + days
        months = dates.astype("datetime64[M]")
        dom = (dates - months.astype("datetime64[D]")).astype(np.int64) + 1
        k = (months - np.datetime64(self.start, "M")).astype(np.int64)
        return k, dom

    def month_start(self, k: IntArray | int) -> Any:
        """Day number of the first day of month index ``k``."""
        return self._month_start[np.asarray(k) - self.k_lo]

    def renewal(self, k: IntArray | int, anchor: IntArray) -> IntArray:
        """Day number of the anchor day (1-28) in month index ``k``."""
        return np.asarray(self.month_start(k) + anchor - 1, dtype=np.int64)


@dataclass(frozen=True)
class World:
    """Account facts drawn for the whole world at once (ids follow creation order)."""

    created_day: IntArray  # day number of creation (negative: before start)
    created_sec: IntArray  # creation time, seconds from start 00:00 UTC
    referred: IntArray  # index of the referring account, or -1
    ids: list[str]
    company: np.random.SeedSequence
    """Seeds draws that concern the whole company (a month's support load, a price
    change): every batch makes the same draws from it."""


def draw_accounts(
    n: int,
    cal: Calendar,
    rng: np.random.Generator,
    *,
    company: np.random.SeedSequence,
    prefix: str = "A",
    width: int = 0,
) -> World:
    """Draw when each of ``n`` accounts was created and who referred it.

    Accounts existing at the start were created up to :data:`PRE_MONTHS` months before
    it, the others arrive during the observed months; sign-ups grow slowly over time and
    fall on days 1-28 of a month (so every month has each account's anniversary day).
    Ids are ``prefix`` and a zero-padded number of at least ``width`` digits;
    ``company`` is kept for the company-wide draws of the shape.
    """
    n_new = round(n * cal.months / (cal.months + 30))
    parts = []
    for lo, hi, count in (
        (int(cal.month_start(-PRE_MONTHS)), 0, n - n_new),
        (0, cal.days, n_new),
    ):
        cand = np.arange(lo, hi, dtype=np.int64)
        cand = cand[cal.split(cand)[1] <= 28]  # anchor days 1-28 exist in every month
        weight = np.exp(cand / 900.0)  # a growing company: more sign-ups lately
        parts.append(rng.choice(cand, size=count, p=weight / weight.sum()))
    day = np.concatenate(parts)
    sec = rng.integers(7 * 3600, 19 * 3600, size=n)
    order = np.lexsort((sec, day))
    day = day[order]
    created_sec = day * DAY + sec[order]
    referred = np.full(n, -1, dtype=np.int64)
    later = np.arange(1, n)
    picked = later[rng.random(n - 1) < 0.1]
    referred[picked] = (rng.random(picked.size) * picked).astype(np.int64)
    digits = max(width, len(str(n)))
    ids = [f"{prefix}{i + 1:0{digits}d}" for i in range(n)]
    return World(day, created_sec, referred, ids, company)


def sigmoid(x: Any) -> Any:
    """Return the logistic function of ``x``."""
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Rows:
    """Subscription rows of one batch, collected month by month."""

    acc: list[IntArray]
    start: list[IntArray]
    end: list[IntArray]
    plan: list[IntArray]
    seats: list[IntArray]
    mrr: list[FloatArray]

    def add(
        self,
        mask: BoolArray,
        start: IntArray,
        end: IntArray,
        plan: IntArray,
        seats: IntArray,
        mrr: FloatArray,
    ) -> None:
        """Add one row for each account in ``mask`` (arrays are indexed by account)."""
        idx = np.flatnonzero(mask)
        self.acc.append(idx)
        self.start.append(start[idx])
        self.end.append(end[idx])
        self.plan.append(plan[idx])
        self.seats.append(seats[idx])
        self.mrr.append(np.round(mrr[idx], 2))

    def arrays(self) -> dict[str, Any]:
        """Return the rows as one array per field."""
        return {
            k: np.concatenate(getattr(self, k))
            for k in ("acc", "start", "end", "plan", "seats", "mrr")
        }


def interval_sum(
    n: int, days: int, acc: IntArray, start: IntArray, end: IntArray, value: IntArray
) -> IntArray:
    """Sum of ``value`` over half-open day intervals, per account and day (n, days)."""
    diff = np.zeros((n, days + 1), dtype=np.int64)
    np.add.at(diff, (acc, np.clip(start, 0, days)), value)
    np.add.at(diff, (acc, np.clip(end, 0, days)), -value)
    return np.cumsum(diff[:, :days], axis=1)


def local_times(rng: np.random.Generator, size: int, lo_h: float, hi_h: float) -> IntArray:
    """Seconds after local midnight, uniform within ``[lo_h, hi_h)`` hours."""
    return rng.integers(int(lo_h * 3600), int(hi_h * 3600), size=size)


_ARROW_TYPES = {
    Kind.STRING: pa.string(),
    Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
    Kind.DATE: pa.date32(),
    Kind.INTEGER: pa.int64(),
    Kind.FLOAT: pa.float64(),
}


def schema(name: str, fmt: str, names: list[str] | None = None) -> pa.Schema:
    """Arrow schema of a contract table as written (CSV holds timestamps as text).

    ``names`` keeps only those columns (in contract order); the default is all of them.
    """
    fields = []
    for col in TABLES[name].columns:
        if names is not None and col.name not in names:
            continue
        typ = _ARROW_TYPES[col.kind]
        if fmt == "csv" and col.kind is Kind.TIMESTAMP:
            typ = pa.string()
        fields.append(pa.field(col.name, typ))
    return pa.schema(fields)


def table(name: str, columns: dict[str, pa.Array]) -> pa.Table:
    """Return contract table ``name`` holding ``columns``, in contract order.

    A column the contract does not know is an error; optional columns left out are
    absent from the export, as they would be from a source that lacks them.
    """
    unknown = set(columns) - {c.name for c in TABLES[name].columns}
    if unknown:
        raise KeyError(f"{name} has no column(s) {sorted(unknown)}")
    written = schema(name, "parquet", list(columns))
    return pa.Table.from_arrays([columns[f.name] for f in written], schema=written)


def ts_array(cal: Calendar, sec: IntArray, mask: BoolArray | None = None) -> pa.Array:
    """Timestamps from seconds after ``start`` 00:00 UTC; ``mask`` marks empty ones."""
    us = (np.asarray(sec, dtype=np.int64) + cal.epoch_day * DAY) * 1_000_000
    return pa.array(us, pa.timestamp("us", tz="UTC"), mask=mask)


def date_array(cal: Calendar, day: IntArray, *, unknown: BoolArray | None = None) -> pa.Array:
    """Return day numbers as dates; ``unknown`` days are written empty."""
    values = (np.asarray(day) + cal.epoch_day).astype(np.int32)
    return pa.array(values, pa.date32(), mask=unknown)


def label_array(labels: tuple[str, ...], idx: IntArray) -> pa.Array:
    """Return ``labels[idx]`` for every index, as strings."""
    return pa.array(labels, pa.string()).take(pa.array(np.asarray(idx, dtype=np.int64)))


class Sink:
    """One open writer per table a shape writes; each batch is appended to every table.

    A table's file is opened with the columns of its first batch, so a shape whose
    export lacks a table or an optional column simply never hands it over.
    """

    def __init__(self, out: Path, fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self.rows: dict[str, int] = {}
        self.files: list[Path] = []
        self._writers: dict[str, Any] = {}

    def _open(self, name: str, names: list[str]) -> None:
        path = self.out / f"{name}.{self.fmt}"
        written = schema(name, self.fmt, names)
        if self.fmt == "parquet":
            writer = pq.ParquetWriter(path, written, compression="zstd", compression_level=3)
        else:
            options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
            writer = pacsv.CSVWriter(path, written, write_options=options)
        self._writers[name] = writer
        self.rows[name] = 0
        self.files.append(path)

    def write(self, tables: dict[str, pa.Table]) -> None:
        """Append one batch of every table (timestamps become ISO-8601 text in CSV)."""
        for name, batch in tables.items():
            if name not in self._writers:
                self._open(name, batch.schema.names)
            if self.fmt == "csv":
                batch = pa.Table.from_arrays(
                    [
                        pc.strftime(
                            col.cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ"
                        )
                        if pa.types.is_timestamp(col.type)
                        else col
                        for col in batch.columns
                    ],
                    schema=schema(name, "csv", batch.schema.names),
                )
            self._writers[name].write_table(batch)
            self.rows[name] += batch.num_rows

    def close(self) -> None:
        """Close every file."""
        for writer in self._writers.values():
            writer.close()
