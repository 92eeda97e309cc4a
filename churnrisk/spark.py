"""The Spark engine: the same feature and label definitions, run by Apache Spark.

DuckDB is the default engine. For event logs that outgrow one machine, this module loads
the contract tables into a Spark session (:func:`load_spark`), checks them against the
contract with the rules :func:`churnrisk.validate.load` runs, the Ibis expressions of
:mod:`churnrisk.checks` (bad rows are counted and written to a quarantine folder, never
dropped silently), and runs the very Ibis expression of
:func:`churnrisk.features.build_features_expr` on Spark through Ibis's pyspark backend
(:func:`build_features_spark`, :func:`write_features_spark`). Nothing here re-states a
feature or a rule.

Settings that matter (set by :func:`spark_session`, checked by :func:`load_spark`): the
session time zone is UTC (a day is a UTC calendar day), shuffle partitions are sized
for the job, Arrow is on for the few small collections to pandas, and in local mode
adaptive query execution is off (it re-plans in many small jobs, which one machine pays
for; bench/RESULTS.md).

pyspark is an optional dependency (``pip install churnrisk[spark]``): it is imported
inside the functions, never at module import.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnrisk.checks import FLAG, VALUE, Check, check_table, valid_values
from churnrisk.config import LabelConfig
from churnrisk.contract import TABLES, Kind, Table
from churnrisk.dataset import observation_end
from churnrisk.errors import ConfigError, DataError
from churnrisk.validate import (
    TableReport,
    UnusableDataError,
    check_columns,
    csv_columns,
    csv_unsplittable_line,
    end_date_note,
    exit_code_of,
    extra_columns_warning,
    unusable_message,
    unusable_tables,
)

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

    from churnrisk.features.registry import Feature

__all__ = [
    "SparkDataset",
    "SparkReport",
    "build_features_spark",
    "load_spark",
    "renewal_mrr_spark",
    "spark_session",
    "write_features_spark",
]

_MISSING_PYSPARK = "the Spark engine needs pyspark: pip install churnrisk[spark]"

_SPARK_TYPES: dict[Kind, str] = {
    Kind.STRING: "string",
    Kind.TIMESTAMP: "timestamp",
    Kind.DATE: "date",
    Kind.INTEGER: "bigint",
    Kind.FLOAT: "double",
}
"""The Spark SQL type of each contract kind. Timestamps are Spark ``TIMESTAMP`` values
(instants) read in the UTC session time zone, the same as DuckDB's naive UTC values."""

_CORRUPT = "__cr_malformed"
"""The column of a CSV table holding the raw text of a malformed record (else NULL)."""


def _pyspark() -> Any:
    """Import pyspark or raise :class:`ConfigError` saying how to install it."""
    try:
        import pyspark
    except ImportError as err:
        raise ConfigError(_MISSING_PYSPARK) from err
    return pyspark


# --------------------------------------------------------------------------- session


def spark_session(
    master: str | None = "local[*]",
    *,
    app_name: str = "churnrisk",
    shuffle_partitions: int = 8,
    driver_memory: str | None = None,
    conf: Mapping[str, str] | None = None,
) -> Any:
    """Return a Spark session configured for churnrisk (created or reused).

    Parameters
    ----------
    master
        The Spark master URL (``local[*]``, ``local[2]``, ``yarn``, ``spark://...``);
        ``None`` keeps what the platform set. Ignored under ``spark-submit`` (its
        ``--master`` wins).
    app_name
        Application name shown in the Spark UI and logs.
    shuffle_partitions
        ``spark.sql.shuffle.partitions``: about two to three times the total executor
        cores (the Spark default of 200 makes tiny tasks on small data).
    driver_memory
        ``spark.driver.memory`` (e.g. ``"2g"``); only effective when the session is new.
    conf
        Further Spark settings, applied last.

    Returns
    -------
    pyspark.sql.SparkSession
        With ``spark.sql.session.timeZone=UTC`` (a day is a UTC calendar day) and Arrow
        on for conversions to pandas; for a ``local`` master also small memory pages
        and ``spark.sql.adaptive.enabled=false`` unless ``conf`` says otherwise.

    Raises
    ------
    ConfigError
        When pyspark is not installed or Spark cannot start (for example no Java).
    """
    _pyspark()
    from pyspark.sql import SparkSession

    # pyspark 4.3 warns on every pandas conversion that it "does not yet fully support
    # pandas >= 3.0.0"; the parity tests are what vouch for the conversions we use.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )

    given: dict[str, str] = {}
    if "PYSPARK_GATEWAY_PORT" in os.environ:  # launched by spark-submit
        from pyspark import SparkConf, SparkContext

        # spark-submit's --master and --conf (and spark-defaults.conf) win over our
        # defaults, except the session time zone, which must be UTC. They are Java
        # system properties of the submitting JVM: SparkConf reads them once connected.
        SparkContext._ensure_initialized()  # connect to spark-submit's JVM (pyspark 3-4)
        given = dict(SparkConf().getAll())
        master = None
    effective_master = master or given.get("spark.master", "")

    settings: dict[str, str] = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
    }
    if driver_memory is not None:
        settings["spark.driver.memory"] = driver_memory
    if effective_master.startswith("local"):
        # One JVM runs every task: small memory pages keep the many operators of one
        # feature query within the driver's memory (a 1 GB driver runs out without it).
        settings["spark.buffer.pageSize"] = "2m"
        # Adaptive execution re-plans the feature query stage by stage, in many small
        # jobs; on one machine that costs more than it saves (bench/RESULTS.md, Spark).
        settings["spark.sql.adaptive.enabled"] = "false"
    settings.update(conf or {})
    settings = {
        k: v for k, v in settings.items() if k == "spark.sql.session.timeZone" or k not in given
    }
    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as err:  # py4j and pyspark raise several unrelated types here
        raise ConfigError(
            f"Spark could not start ({str(err).strip().splitlines()[0] if str(err) else err!r});"
            " it needs Java 17 or later on the PATH or in JAVA_HOME"
        ) from err
    # a reused session keeps its static settings; the runtime ones are applied again
    for key in ("spark.sql.session.timeZone", "spark.sql.shuffle.partitions"):
        if key in settings:
            session.conf.set(key, settings[key])
    session.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    return session


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class SparkReport:
    """What :func:`load_spark` found.

    Attributes
    ----------
    tables
        Row counts per table the source provided, in contract order.
    broken
        Per table, the number of rows breaking each ``column:rule`` (a row breaking two
        rules counts under both, and is quarantined once).
    absent
        Optional tables the source did not provide.
    warnings
        Non-fatal notes (ignored columns, empty optional tables).
    quarantine
        Per table with quarantined rows, where they were written (when asked).
    """

    tables: dict[str, TableReport] = field(default_factory=dict)
    broken: dict[str, dict[str, int]] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    quarantine: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """Return 2 when a required table has no valid row, 1 when rows were set aside."""
        return exit_code_of(self.tables)


# --------------------------------------------------------------------------- dataset


@dataclass
class SparkDataset:
    """Validated contract tables as Spark temporary views, read through Ibis.

    It offers what the feature and label definitions read (a
    :class:`churnrisk.dataset.TableSet`): :meth:`table` returns Ibis tables on the
    pyspark backend, so :func:`churnrisk.features.build_features_expr` runs unchanged.

    Attributes
    ----------
    session
        The Spark session holding the views.
    views
        The temporary view of each contract table (every table; absent ones empty).
    absent
        Optional tables the source did not provide.
    source
        Where the data came from, for messages.
    report
        The validation report.
    """

    session: Any
    views: dict[str, str]
    absent: frozenset[str] = frozenset()
    source: str = "<spark>"
    report: SparkReport = field(default_factory=SparkReport)
    _ibis: Any = field(default=None, repr=False)

    @property
    def backend(self) -> Any:
        """The Ibis pyspark backend over :attr:`session` (created on first use)."""
        if self._ibis is None:
            self._ibis = _ibis_backend(self.session)
        return self._ibis

    def table(self, name: str) -> Any:
        """Return the Ibis table expression of contract table ``name``."""
        if name not in TABLES:
            raise DataError(f"unknown table {name!r}; the contract has {', '.join(TABLES)}")
        return self.backend.table(self.views[name])

    def dataframe(self, name: str) -> Any:
        """Return contract table ``name`` as a Spark DataFrame."""
        if name not in TABLES:
            raise DataError(f"unknown table {name!r}; the contract has {', '.join(TABLES)}")
        return self.session.table(self.views[name])

    def has(self, name: str) -> bool:
        """Whether the source provided table ``name``."""
        return name not in self.absent

    def frame(self, name: str) -> pd.DataFrame:
        """Return contract table ``name`` as a pandas frame (small data only)."""
        return self.dataframe(name).toPandas()


def _ibis_backend(session: Any) -> Any:
    """Return an Ibis pyspark backend over ``session``."""
    import ibis

    return ibis.pyspark.connect(session)


# --------------------------------------------------------------------------- sources


def _is_remote(text: str) -> bool:
    return "://" in text and not text.startswith("file://")


def _try_read(session: Any, candidates: Sequence[str]) -> tuple[Any, str] | None:
    """Read the first of ``candidates`` that Spark can open as Parquet (lake URIs)."""
    from pyspark.errors import AnalysisException

    for path in candidates:
        try:
            return session.read.parquet(path), path
        except AnalysisException:
            continue
    return None


def _folder_tables(session: Any, root: str, warnings: list[str]) -> dict[str, tuple[Any, str]]:
    """Find the contract tables under a folder or lake prefix.

    Each table is ``<root>/<table>.parquet`` (a file or a folder of part files),
    ``<root>/<table>/`` (a folder, possibly partitioned ``key=value/``) or, in a local
    folder, ``<root>/<table>.csv`` (a header and comma-separated text).
    """
    found: dict[str, tuple[Any, str]] = {}
    root = root.rstrip("/")
    if _is_remote(root):
        for name in TABLES:
            hit = _try_read(session, [f"{root}/{name}.parquet", f"{root}/{name}"])
            if hit is not None:
                found[name] = hit
        return found
    folder = Path(root.removeprefix("file://")).expanduser().resolve()
    if not folder.is_dir():
        what = "does not exist" if not folder.exists() else "is not a folder"
        raise DataError(
            f"data source {folder} {what}; pass a folder of <table>.parquet files or "
            "<table>/ folders, or a Spark database prefix such as 'lake.'"
        )
    for name in TABLES:
        parquet, plain, text = (
            folder / f"{name}.parquet",
            folder / name,
            folder / f"{name}.csv",
        )
        given = [p for p in (parquet, plain, text) if p.exists()]
        if len(given) > 1:
            raise DataError(
                f"table {name!r} is given twice in {folder} "
                f"({' and '.join(p.name for p in given)}); keep only one of them"
            )
        if not given:
            continue
        path = given[0]
        df = _read_csv(session, path) if path == text else session.read.parquet(str(path))
        found[name] = (df, str(path))
    known = {f"{n}{suffix}" for n in TABLES for suffix in ("", ".parquet", ".csv")}
    ignored = sorted(
        p.name
        for p in folder.iterdir()
        if p.name not in known
        and not p.name.startswith((".", "_"))
        and (p.is_dir() or p.suffix in (".parquet", ".csv"))
    )
    if ignored:
        warnings.append(f"{folder}: {', '.join(ignored)} are not contract tables and were ignored")
    return found


def _read_csv(session: Any, path: Path) -> Any:
    """Read a local CSV table with every column as text, marking malformed records.

    The columns are named from the header, checked as the DuckDB loader checks it (UTF-8,
    comma-separated, no name twice). Spark's ``PERMISSIVE`` mode would pad a record
    with too few fields with NULLs and cut one with too many, silently; with an
    explicit schema and ``columnNameOfCorruptRecord`` it also keeps the raw text of
    such a record in the column ``__cr_malformed``, which makes it a ``malformed_line``.
    ``multiLine`` stays on: without it a quoted line break splits a sound record into
    pieces, some of which parse. With it, Spark reads an unterminated quote as a value
    running to the end of the file, and keeps text after a closing quote, without
    marking either; DuckDB's reader finds those lines first, and the file is refused.

    Raises
    ------
    DataError
        When the header is unusable, the file is not UTF-8, or a record is malformed
        in a way Spark cannot mark (an unterminated quote, text after a closing quote,
        a record over 2 MB).
    """
    from pyspark.sql import types as st

    header = csv_columns(path)
    unsplittable = csv_unsplittable_line(path)
    if unsplittable is not None:
        line, error, text = unsplittable
        raise DataError(
            f"{path} line {line}: {error} ({text[:60]!r}); the Spark engine cannot set "
            "such a line aside (it would read on to the end of the file or keep the stray "
            "quote): fix the line, or load the folder with the DuckDB engine, which "
            "quarantines it"
        )
    fields = [st.StructField(name, st.StringType(), True) for name in [*header, _CORRUPT]]
    return (
        session.read.options(
            header=True,
            multiLine=True,
            escape='"',
            mode="PERMISSIVE",
            columnNameOfCorruptRecord=_CORRUPT,
        )
        .schema(st.StructType(fields))
        .csv(str(path))
    )


def _catalog_tables(session: Any, prefix: str) -> dict[str, tuple[Any, str]]:
    """Find the contract tables ``<prefix><table>`` in the Spark catalog."""
    found: dict[str, tuple[Any, str]] = {}
    for name in TABLES:
        full = f"{prefix}{name}"
        if session.catalog.tableExists(full):
            found[name] = (session.table(full), full)
    return found


def _sources(
    session: Any, source: Any, warnings: list[str]
) -> tuple[dict[str, tuple[Any, str]], str]:
    """Resolve ``source`` to one DataFrame (and a description) per table it provides."""
    from pyspark.sql import DataFrame

    if isinstance(source, Mapping):
        unknown = sorted(set(source) - set(TABLES))
        if unknown:
            raise DataError(f"unknown table(s) {unknown}; the contract has {', '.join(TABLES)}")
        found: dict[str, tuple[Any, str]] = {}
        for name, given in source.items():
            if isinstance(given, DataFrame):
                found[name] = (given, f"<DataFrame {name}>")
            else:
                found[name] = (session.read.parquet(str(given)), str(given))
        return found, "<tables>"
    text = str(source)
    # a lake URI that went through pathlib lost a slash: s3a:/bucket -> s3a://bucket
    text = re.sub(r"^(?!file:)([A-Za-z][A-Za-z0-9+.-]*):/(?!/)", r"\1://", text)
    if isinstance(source, str) and source.endswith(".") and "/" not in source:
        return _catalog_tables(session, source), source
    return _folder_tables(session, text, warnings), text


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class _Checked:
    """One table with its rule flags, before the counts are known."""

    name: str
    where: str
    source_columns: list[str]
    flagged: Any
    """The source rows with their typed values ``__cr_v<i>`` and flags ``__cr_k<i>``."""
    checks: tuple[Check, ...]
    valid_values: Any
    """The contract columns of every source row, computed as for rows known valid."""

    @property
    def flags(self) -> list[Any]:
        from pyspark.sql import functions as sf

        return [sf.col(FLAG.format(i)) for i in range(len(self.checks))]

    @property
    def bad(self) -> Any:
        from functools import reduce

        from pyspark.sql import functions as sf

        return reduce(lambda a, b: a | b, self.flags, sf.lit(False))

    def counts(self) -> Any:
        """Return a one-row DataFrame: ``table``, ``rows``, ``bad``, ``broken`` (label → rows)."""
        from pyspark.sql import functions as sf

        pairs = []
        for check, flag in zip(self.checks, self.flags, strict=True):
            pairs += [sf.lit(check.label), sf.sum(flag.cast("long"))]
        return self.flagged.agg(
            sf.lit(self.name).alias("table"),
            sf.count(sf.lit(1)).alias("rows"),
            sf.sum(self.bad.cast("long")).alias("bad"),
            sf.create_map(*pairs).alias("broken"),
        )

    def _values(self, rows: Any) -> Any:
        """Return ``rows`` as the contract columns, from their typed ``__cr_v<i>`` values."""
        from pyspark.sql import functions as sf

        table = TABLES[self.name]
        return rows.select(
            *(sf.col(VALUE.format(i)).alias(c.name) for i, c in enumerate(table.columns))
        )

    def clean(self) -> Any:
        """Return the valid rows in contract columns and types."""
        return self._values(self.flagged.filter(~self.bad))

    def sound(self) -> Any:
        """Return :meth:`clean` for a table known to have no row breaking a rule.

        The same rows and values, without computing the checks again (nor the join to
        the known accounts) each time the table is read.
        """
        return self.valid_values

    def quarantined(self) -> Any:
        """Return the rows breaking a rule, with ``_problems`` (``column:rule;...``).

        A CSV table also gets ``_text``, the raw text of a malformed record (whose
        source columns are NULL: Spark's split of it means nothing), NULL otherwise.
        """
        from pyspark.sql import functions as sf

        labels = [
            sf.when(flag, sf.lit(c.label)) for c, flag in zip(self.checks, self.flags, strict=True)
        ]
        columns = [sf.col(f"`{c}`") for c in self.source_columns]
        if _CORRUPT in self.flagged.columns:
            sound = sf.col(_CORRUPT).isNull()
            columns = [
                *(sf.when(sound, sf.col(f"`{c}`")).alias(c) for c in self.source_columns),
                sf.col(_CORRUPT).alias("_text"),
            ]
        return self.flagged.filter(self.bad).select(
            *columns, sf.concat_ws(";", *labels).alias("_problems")
        )


def _check_table(
    name: str, df: Any, where: str, accounts: str | None, backend: Any, report: SparkReport
) -> _Checked:
    """Check the columns of one table and flag the rows breaking each rule (lazily).

    The rules are :func:`churnrisk.checks.check_table`'s, compiled to Spark SQL over a
    temporary view of ``df``; ``accounts`` is the view of the valid accounts. A
    malformed CSV record (see :func:`_read_csv`) breaks ``malformed_line`` and no other
    rule, and does not count as a duplicate of a sound row, as on DuckDB, whose reader
    skips it.
    """
    from pyspark import StorageLevel

    table = TABLES[name]
    source_columns = [c for c in df.columns if c != _CORRUPT]
    check_columns(table, source_columns, where)
    extra = extra_columns_warning(table, source_columns, where)
    if extra:
        report.warnings.append(extra)
    view = f"churnrisk_{uuid.uuid4().hex[:12]}_source_{name}"
    df.createOrReplaceTempView(view)
    source = backend.table(view)
    checked = check_table(
        name,
        source,
        engine="spark",
        known_accounts=None if accounts is None else backend.table(accounts),
        unsound=_CORRUPT if _CORRUPT in df.columns else None,
    )
    session = df.sparkSession
    flagged = session.sql(str(backend.compile(checked.flagged())))
    values = session.sql(str(backend.compile(valid_values(name, source, engine="spark"))))
    if name != "events":
        # Like the DuckDB loader, every table but events is materialised once: the
        # feature query reads the small tables many times over (accounts above all).
        flagged = flagged.persist(StorageLevel.MEMORY_AND_DISK)
    return _Checked(name, where, source_columns, flagged, checked.checks, values)


def _record(
    checked: _Checked, counts: Any, quarantine_dir: str | None, report: SparkReport
) -> None:
    """Record one table's counts in ``report`` and write its quarantined rows."""
    name, table = checked.name, TABLES[checked.name]
    rows, quarantined = int(counts["rows"]), int(counts["bad"] or 0)
    if rows == 0:
        if table.required:
            raise DataError(
                f"{checked.where} has no rows; required table {name!r} needs at least one row"
            )
        report.warnings.append(
            f"{checked.where} has no rows; optional table {name!r} is treated as having no rows"
        )
    report.tables[name] = TableReport(rows=rows, valid=rows - quarantined, quarantined=quarantined)
    order = [f"{c.column}:{c.rule}" for c in checked.checks]
    broken = {k: int(counts["broken"][k]) for k in order if counts["broken"].get(k)}
    if broken:
        report.broken[name] = broken
    if quarantine_dir is None:
        return
    target = f"{quarantine_dir.rstrip('/')}/{name}"
    if quarantined:
        checked.quarantined().write.mode("overwrite").parquet(target)
        report.quarantine[name] = target
    elif not _is_remote(target):
        # quarantined rows left by an earlier run must not outlive the rows they listed
        shutil.rmtree(Path(target.removeprefix("file://")), ignore_errors=True)


def _empty(session: Any, table: Table) -> Any:
    schema = ", ".join(f"`{c.name}` {_SPARK_TYPES[c.kind]}" for c in table.columns)
    return session.createDataFrame([], schema)


def load_spark(
    source: str | Path | Mapping[str, Any],
    session: Any | None = None,
    *,
    quarantine_dir: str | Path | None = None,
) -> SparkDataset:
    """Load and validate contract tables in Spark.

    Parameters
    ----------
    source
        Where the tables are: a folder or lake prefix (``s3a://...``, ``hdfs://...``)
        holding ``<table>.parquet`` (a file or a folder of part files) or ``<table>/``
        (a folder, possibly partitioned ``key=value/``; in a local folder also
        ``<table>.csv``); a Spark catalog prefix ending with a dot, such as ``"lake."``
        for the tables ``lake.accounts``, ``lake.subscriptions``, ...; or a mapping of
        table name to a Parquet path or a Spark DataFrame.
    session
        The Spark session (default :func:`spark_session` with its defaults). Its
        session time zone is set to UTC.
    quarantine_dir
        When given, the rows of each table that break a rule are written there as
        Parquet, ``<quarantine_dir>/<table>/``: the source columns plus ``_problems``
        (and, for a CSV table, ``_text``: the raw text of a malformed record).

    Returns
    -------
    SparkDataset
        Every contract table as a temporary view of its valid rows in contract types;
        optional tables the source lacks are empty and listed in ``absent``. The rules
        are those of :func:`churnrisk.validate.load` (missing, unparseable, negative,
        out of range, not integer, duplicate key, unknown account, end not after start,
        resolved before created, and for CSV malformed line, under the label
        ``":malformed_line"``); the report counts the rows breaking each. Every
        table but ``events`` is cached (memory and disk), as the DuckDB loader
        materialises them; ``session.catalog.clearCache()`` frees them. When no event
        breaks a rule, the ``events`` view reads the source without the checks.

    Raises
    ------
    ConfigError
        When pyspark is missing.
    DataError
        When a required table or column is missing, a required table is empty or has
        no valid row left (:class:`~churnrisk.validate.UnusableDataError`); for a
        CSV table also when its header is unusable, it is not UTF-8, or a record is
        malformed in a way Spark's reader cannot mark (an unterminated quote, text
        after a closing quote, over 2 MB); a record with too many or too few fields is
        quarantined as ``malformed_line``.
    """
    _pyspark()
    session = session if session is not None else spark_session()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    report = SparkReport()
    found, where = _sources(session, source, report.warnings)
    missing = [n for n, t in TABLES.items() if t.required and n not in found]
    if missing:
        raise DataError(f"required table(s) {', '.join(missing)} missing from {where}; add them")
    token = uuid.uuid4().hex[:12]
    quarantine = None if quarantine_dir is None else str(quarantine_dir)
    views: dict[str, str] = {}
    checked: list[_Checked] = []
    backend = _ibis_backend(session)
    for name, table in TABLES.items():
        view = f"churnrisk_{token}_{name}"
        if name in found:
            df, described = found[name]
            accounts = views.get("accounts")
            checked.append(_check_table(name, df, described, accounts, backend, report))
            clean = checked[-1].clean()
        else:
            report.absent.append(name)
            clean = _empty(session, table)
        clean.createOrReplaceTempView(view)
        views[name] = view
    # one Spark job counts every table and rule
    counted = {
        row["table"]: row
        for row in reduce(lambda a, b: a.unionByName(b), [c.counts() for c in checked]).collect()
    }
    for item in checked:
        _record(item, counted[item.name], quarantine, report)
        if item.name == "events" and not report.tables[item.name].quarantined:
            # the only table not cached: the feature query reads it several times, and
            # with no row set aside the checks need not run again on each read
            item.sound().createOrReplaceTempView(views[item.name])
    if unusable_tables(report.tables):
        raise UnusableDataError(unusable_message(report.tables), report)
    ds = SparkDataset(
        session=session,
        views=views,
        absent=frozenset(report.absent),
        source=where,
        report=report,
        _ibis=backend,
    )
    note = _end_date_note(ds)
    if note is not None:
        report.warnings.append(note)
    return ds


def _end_date_note(ds: SparkDataset) -> str | None:
    """Return :func:`churnrisk.validate.end_date_note` of the subscriptions, in one job."""
    end = observation_end(ds)
    subs = ds.table("subscriptions")
    counts = ds.backend.execute(
        subs.aggregate(
            rows=subs.count(),
            ended=subs.end_date.count(),
            future=subs.count(where=subs.end_date > end),
            with_term_end=subs.term_end.count(),
        )
    ).iloc[0]
    # a filtered count over no matching row comes back NULL from Spark
    n = {
        k: 0 if counts[k] != counts[k] or counts[k] is None else int(counts[k])
        for k in counts.index
    }
    return end_date_note(
        rows=n["rows"],
        ended=n["ended"],
        future=n["future"],
        with_term_end=n["with_term_end"],
        last_day=end - timedelta(days=1),
    )


# --------------------------------------------------------------------------- features


def build_features_spark(
    ds: SparkDataset,
    as_of: Sequence[date],
    *,
    labels: LabelConfig | None = None,
    observed_end: date | None = None,
    features: Sequence[Feature] | None = None,
) -> Any:
    """Return the feature panel as a Spark DataFrame (lazy, nothing runs yet).

    The expression is :func:`churnrisk.features.build_features_expr`, the one the
    DuckDB engine runs, compiled to Spark SQL by Ibis.

    Parameters
    ----------
    ds
        The data set of :func:`load_spark`.
    as_of
        As-of dates (midnight UTC); each sees only data strictly before it.
    labels
        When given, add ``churned`` and ``revenue_next_12m``.
    observed_end
        Exclusive end of observation for the labels (default: the day after the latest
        observed date, as on DuckDB).
    features
        The declarations to compute (default the registry; a model's
        ``panel_features(models.vocabulary)`` adds its vocabulary features).

    Returns
    -------
    pyspark.sql.DataFrame
        ``account_id`` (string), ``as_of`` (date), every feature of ``features`` in
        order (double, or string for categorical ones), then ``churned`` (tinyint) and
        ``revenue_next_12m`` (double) with labels; ordered by ``as_of, account_id``.
        The spine of the dates is cached (it is read by every feature and label).
    """
    from pyspark import StorageLevel

    from churnrisk.features import FEATURES, build_features_expr, spine

    days = sorted(set(as_of))
    if not days:
        raise ConfigError("no as-of dates given; pass at least one date")
    token = uuid.uuid4().hex[:12]
    dates_view, spine_view = f"churnrisk_{token}_as_of", f"churnrisk_{token}_spine"
    ds.session.createDataFrame([(d,) for d in days], "as_of date").createOrReplaceTempView(
        dates_view
    )
    dates = ds.backend.table(dates_view)
    # The spine (accounts x dates, small) feeds every feature and label: cached once,
    # since Spark inlines the query's common parts and would recompute it each time.
    known = ds.session.sql(str(ds.backend.compile(spine(ds, dates))))
    known.persist(StorageLevel.MEMORY_AND_DISK).createOrReplaceTempView(spine_view)
    expr = build_features_expr(
        ds,
        dates,
        labels=labels,
        observed_end=observed_end,
        known_spine=ds.backend.table(spine_view),
        features=FEATURES if features is None else features,
    )
    return ds.session.sql(str(ds.backend.compile(expr)))


def renewal_mrr_spark(ds: SparkDataset, as_of: date) -> DataFrame:
    """Return the MRR up for renewal as of ``as_of`` on Spark.

    The one expression of :func:`churnrisk.features.engine.renewal_mrr_expr`, compiled
    for Spark: ``account_id``, ``as_of``, ``renewal_mrr`` per spine account.
    """
    from churnrisk.features.engine import renewal_mrr_expr

    token = uuid.uuid4().hex[:12]
    dates_view = f"churnrisk_{token}_renewal_as_of"
    ds.session.createDataFrame([(as_of,)], "as_of date").createOrReplaceTempView(dates_view)
    expr = renewal_mrr_expr(ds, ds.backend.table(dates_view))
    return ds.session.sql(str(ds.backend.compile(expr)))


def write_features_spark(
    ds: SparkDataset,
    as_of: Sequence[date],
    out: str | Path,
    *,
    labels: LabelConfig | None = None,
    observed_end: date | None = None,
    features: Sequence[Feature] | None = None,
) -> int:
    """Write the feature panel as Parquet with Spark, without passing through pandas.

    ``out`` is a folder of part files (the Spark convention), replaced when it exists.

    Returns
    -------
    int
        The number of rows written, one per (account, as-of) pair.
    """
    panel = build_features_spark(
        ds, as_of, labels=labels, observed_end=observed_end, features=features
    )
    target = str(out)
    panel.write.mode("overwrite").parquet(target)
    return int(ds.session.read.parquet(target).count())
