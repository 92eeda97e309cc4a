"""Tables read from the Spark catalog (``lake.`` prefix), as a metastore user keeps them.

The session's in-memory catalog stands in for a Hive metastore or Unity Catalog: a
database with its location in a temporary folder, one managed table per contract table.
Loading ``"<database>."`` must find the same tables, quarantine the same rows and give
the same clean tables as loading the Parquet files the tables were made from (the
feature build reads only those tables, and its parity is proven elsewhere).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytest.importorskip("pyspark")

from spark_fixtures import spark_fixture  # noqa: F401

from churnrisk.contract import TABLES
from churnrisk.generate import generate_world
from churnrisk.validate import TableReport

_NONE = TableReport(rows=0, valid=0, quarantined=0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("catalog_world")
    generate_world(out, accounts=60, months=12, seed=21)
    return out


def _rows(ds: Any, name: str) -> pd.DataFrame:
    frame = ds.dataframe(name).toPandas()
    return frame.sort_values(list(frame.columns), ignore_index=True)


def test_a_catalog_prefix_loads_like_the_files(spark, world, tmp_path):
    from churnrisk.spark import load_spark

    database = f"lake_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE DATABASE {database} LOCATION '{tmp_path / 'warehouse'}'")
    try:
        written = []
        for name in TABLES:
            path = world / f"{name}.parquet"
            if path.exists():
                spark.read.parquet(str(path)).write.saveAsTable(f"{database}.{name}")
                written.append(name)
        assert {"accounts", "subscriptions", "events"} <= set(written)

        from_catalog = load_spark(f"{database}.", spark)
        from_files = load_spark(str(world), spark)
        assert from_catalog.report.tables == from_files.report.tables
        assert from_catalog.report.broken == from_files.report.broken
        assert from_catalog.report.absent == from_files.report.absent
        assert sum(t.rows for t in from_catalog.report.tables.values()) > 500

        for name in TABLES:
            got, expected = _rows(from_catalog, name), _rows(from_files, name)
            assert len(got) == from_files.report.tables.get(name, _NONE).valid
            pd.testing.assert_frame_equal(got, expected)
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")


def test_a_catalog_prefix_without_the_tables_says_so(spark):
    from churnrisk.errors import DataError
    from churnrisk.spark import load_spark

    with pytest.raises(DataError, match=r"required table\(s\) accounts, subscriptions"):
        load_spark("no_such_lake.", spark)
