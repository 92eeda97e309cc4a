"""Data sources: a generated world, and a source validated on DuckDB or on Spark."""

from __future__ import annotations

import os
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from churnrisk.jobs.progress import QUIET, Progress

if TYPE_CHECKING:
    from churnrisk.generate import GenerateSummary
    from churnrisk.spark import SparkDataset
    from churnrisk.validate import LoadResult


def generate(
    out_dir: Path,
    *,
    shape: str = "default",
    accounts: int | None = None,
    months: int | None = None,
    start: date = date(2024, 11, 1),
    seed: int = 0,
    fmt: Literal["csv", "parquet"] = "parquet",
    progress: Progress = QUIET,
) -> GenerateSummary:
    """Write a synthetic world (:func:`churnrisk.generate.generate_world`), counting accounts."""
    from churnrisk.generate import SHAPES, generate_world

    total = accounts if accounts is not None else getattr(SHAPES.get(shape), "accounts", None)
    with progress.counting("generating accounts", total) as advance:
        return generate_world(
            out_dir,
            shape=shape,
            accounts=accounts,
            months=months,
            start=start,
            seed=seed,
            fmt=fmt,
            progress=advance,
        )


def load_data(
    data: Path, *, quarantine: Path | None = None, progress: Progress = QUIET
) -> LoadResult:
    """Validate ``data`` (:func:`churnrisk.validate.load`) and report what was set aside.

    The report reaches ``progress.loaded`` also when a required table was left without
    a valid row, before :class:`~churnrisk.validate.UnusableDataError` is raised.
    """
    from churnrisk.validate import UnusableDataError, load

    try:
        with progress.working(f"validating {data}"):
            result = load(data, quarantine_dir=quarantine)
    except UnusableDataError as exc:
        progress.loaded(exc.report, quarantine, data)
        raise
    progress.loaded(result.report, quarantine, data)
    return result


def open_spark(master: str) -> Any:
    """Open (or reuse) the Spark session of :func:`churnrisk.spark.spark_session`.

    Its Python workers (``spark_udf``, ``mapInPandas``) run this interpreter, where the
    churnrisk package is installed, rather than whatever ``python3`` is first on the
    PATH; a ``PYSPARK_PYTHON`` of the environment still wins.
    """
    from churnrisk.spark import spark_session

    session = spark_session(master=master)
    if "PYSPARK_PYTHON" not in os.environ:
        session.sparkContext.pythonExec = sys.executable
    return session


def load_spark_data(
    source: str, session: Any, *, quarantine: Path | None = None, progress: Progress = QUIET
) -> SparkDataset:
    """Validate ``source`` on Spark (:func:`churnrisk.spark.load_spark`), as :func:`load_data`."""
    from churnrisk.spark import load_spark
    from churnrisk.validate import UnusableDataError

    try:
        with progress.working(f"validating {source} on Spark"):
            ds = load_spark(source, session, quarantine_dir=quarantine)
    except UnusableDataError as exc:
        progress.loaded(exc.report, quarantine, None)
        raise
    progress.loaded(ds.report, quarantine, None)
    return ds
