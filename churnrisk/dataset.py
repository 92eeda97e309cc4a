"""A validated data set: typed contract tables in one DuckDB connection.

Every stage after validation (features, labels, metrics) reads a :class:`Dataset` and
nothing else. Each contract table is a DuckDB table or view named after it, with every
contract column (optional ones null when the source lacked them) in the contract's
types. Optional tables that the source does not have are present but empty, and named
in :attr:`Dataset.absent`, so that stages can switch off what needs them and say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pandas as pd

from churnrisk.contract import TABLES, Kind
from churnrisk.errors import DataError

if TYPE_CHECKING:
    import ibis.backends.duckdb


def quote(identifier: str) -> str:
    """Quote a SQL identifier for DuckDB."""
    return '"' + identifier.replace('"', '""') + '"'


def empty_table_sql(name: str) -> str:
    """Return a ``SELECT`` that yields no rows with the contract schema of ``name``."""
    cols = ", ".join(
        f"CAST(NULL AS {c.kind.value}) AS {quote(c.name)}" for c in TABLES[name].columns
    )
    return f"SELECT {cols} WHERE false"


class TableSet(Protocol):
    """What the feature and label definitions read: contract tables as Ibis expressions.

    :class:`Dataset` (DuckDB, the default) and :class:`churnrisk.spark.SparkDataset`
    (Spark) both provide it, so one Ibis definition runs on either engine.
    """

    @property
    def absent(self) -> frozenset[str]:
        """Optional tables the source did not provide (present, empty)."""
        ...

    @property
    def source(self) -> str:
        """Where the data came from, for messages."""
        ...

    @property
    def backend(self) -> Any:
        """The Ibis backend that holds the tables."""
        ...

    def table(self, name: str) -> Any:
        """Return the Ibis table expression of contract table ``name``."""
        ...

    def has(self, name: str) -> bool:
        """Whether the source provided table ``name``."""
        ...


@dataclass
class Dataset:
    """Validated contract tables held by a DuckDB connection.

    Attributes
    ----------
    con
        The DuckDB connection holding one relation per contract table.
    absent
        Optional tables the source did not provide (present here, empty).
    source
        Where the data came from, for messages.
    """

    con: duckdb.DuckDBPyConnection
    absent: frozenset[str] = frozenset()
    source: str = "<memory>"
    _ibis: Any = field(default=None, repr=False)

    @property
    def backend(self) -> ibis.backends.duckdb.Backend:
        """An Ibis backend over :attr:`con` (created on first use)."""
        if self._ibis is None:
            import ibis

            self._ibis = ibis.duckdb.from_connection(self.con)
        return self._ibis

    def table(self, name: str) -> Any:
        """Return the Ibis table expression of contract table ``name``."""
        if name not in TABLES:
            raise DataError(f"unknown table {name!r}; the contract has {', '.join(TABLES)}")
        return self.backend.table(name)

    def has(self, name: str) -> bool:
        """Whether the source provided table ``name``."""
        return name not in self.absent

    def frame(self, name: str) -> pd.DataFrame:
        """Return contract table ``name`` as a pandas frame (small data only)."""
        return self.con.sql(f"SELECT * FROM {quote(name)}").df()

    @classmethod
    def from_frames(
        cls, frames: Mapping[str, pd.DataFrame], *, source: str = "<frames>"
    ) -> Dataset:
        """Build a data set from already clean pandas frames (tests, notebooks).

        Missing optional columns are filled with nulls and every column is cast to its
        contract type. This does not apply the contract's row rules; use
        :func:`churnrisk.validate.load` for data of unknown quality.

        Raises
        ------
        DataError
            When a required table or column is missing, a table is unknown, or a value
            cannot be cast to its contract type.
        """
        unknown = sorted(set(frames) - set(TABLES))
        if unknown:
            raise DataError(f"unknown table(s) {unknown}; the contract has {', '.join(TABLES)}")
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        absent = []
        for name, spec in TABLES.items():
            if name not in frames:
                if spec.required:
                    raise DataError(f"required table {name!r} is missing from the frames")
                con.execute(f"CREATE TABLE {quote(name)} AS {empty_table_sql(name)}")
                absent.append(name)
                continue
            df = frames[name]
            missing = [c for c in spec.required_columns if c not in df.columns]
            if missing:
                raise DataError(f"table {name!r} lacks required column(s) {missing}")
            con.register("_incoming", df)
            selects = []
            for col in spec.columns:
                target = col.kind.value
                if col.name not in df.columns:
                    selects.append(f"CAST(NULL AS {target}) AS {quote(col.name)}")
                elif col.kind is Kind.TIMESTAMP:
                    # tz-aware input is converted to UTC, naive input is taken as UTC
                    selects.append(
                        f"CAST(CAST({quote(col.name)} AS TIMESTAMPTZ) AS TIMESTAMP)"
                        f" AS {quote(col.name)}"
                    )
                else:
                    selects.append(f"CAST({quote(col.name)} AS {target}) AS {quote(col.name)}")
            try:
                con.execute(
                    f"CREATE TABLE {quote(name)} AS SELECT {', '.join(selects)} FROM _incoming"
                )
            except duckdb.Error as err:
                raise DataError(f"table {name!r}: {err}") from err
            finally:
                con.unregister("_incoming")
        return cls(con=con, absent=frozenset(absent), source=source)


OBSERVED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("events", "timestamp"),
    ("subscriptions", "start_date"),
    ("tickets", "created_at"),
    ("nps", "responded_at"),
    ("orders", "ordered_at"),
    ("accounts", "created_at"),
)
"""The (table, column) pairs whose latest date marks how far the data was observed."""


def observation_end(ds: TableSet) -> date:
    """Return the exclusive end of observation of a data set.

    It is the day after the latest date seen in any of :data:`OBSERVED_COLUMNS`
    (event timestamps, subscription starts, ticket creations, NPS answers, orders and
    account creations). Subscription end dates are not observations: they are contract
    terms that may lie in the future.

    Raises
    ------
    DataError
        When none of those columns holds a value.
    """
    import ibis

    # one query for every column: a distributed engine pays a job per query
    parts = [
        ds.table(table).aggregate(latest=ds.table(table)[column].cast("date").max())
        for table, column in OBSERVED_COLUMNS
        if ds.has(table)
    ]
    values = ds.backend.execute(ibis.union(*parts) if len(parts) > 1 else parts[0])["latest"]
    latest: list[date] = [
        value.date() if hasattr(value, "date") else value
        for value in values
        if value is not None and value == value  # NULL comes back as None or NaT
    ]
    if not latest:
        raise DataError(
            f"{ds.source}: cannot tell when observation ends, the data set holds no dates;"
            " pass the period or as-of date explicitly"
        )
    return max(latest) + timedelta(days=1)


def observation_start(ds: TableSet) -> date:
    """Return the first day of observation of a data set.

    The day of the earliest product event when ``events`` was provided, since usage is
    what most features window over; otherwise the earliest subscription start. Account
    creation dates are not used: accounts often predate the data that describes them.

    Raises
    ------
    DataError
        When neither table holds a date.
    """
    for table, column in (("events", "timestamp"), ("subscriptions", "start_date")):
        if not ds.has(table):
            continue
        value = ds.backend.execute(ds.table(table)[column].cast("date").min())
        if value is not None and value == value:  # NULL comes back as None or NaT
            return value.date() if hasattr(value, "date") else value
    raise DataError(
        f"{ds.source}: cannot tell when observation starts, the data set holds no events"
        " or subscriptions"
    )
