"""The data contract is one definition: DuckDB and Spark find the same broken rows.

Both loaders run the rules of :mod:`churnrisk.checks`. Two hand-made sources break every
rule, with the texts where the engines' own casts disagree (Spark reads ``2024``,
``2024-02`` and ``yesterday`` as timestamps, DuckDB reads ``epoch``, ``infinity`` and
time-zone names; ``costs.month`` also reads ``YYYY-MM``): a CSV folder, whose expected
problems are worked out by hand, and typed Parquet tables (NaN, infinity, time zones,
fractional scores). On each, :func:`churnrisk.validate.load` and
:func:`churnrisk.spark.load_spark` must report the same counts per table and per rule,
quarantine the same rows with the same ``_problems`` and keep the same valid rows.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")

from spark_fixtures import spark_fixture  # noqa: F401

from churnrisk.contract import TABLES, Rule
from churnrisk.validate import TableReport, load

M, U, NI = Rule.MISSING_VALUE, Rule.UNPARSEABLE, Rule.NOT_INTEGER
NEG, OOR, DUP = Rule.NEGATIVE, Rule.OUT_OF_RANGE, Rule.DUPLICATE_KEY
UNKNOWN, END, RESOLVED = (
    Rule.UNKNOWN_ACCOUNT,
    Rule.END_NOT_AFTER_START,
    Rule.RESOLVED_BEFORE_CREATED,
)
NOT_ALLOWED, TOO_LONG = Rule.NOT_ALLOWED, Rule.TOO_LONG

# Each table: its header, then (row, expected problems as (column, rule)) per data row.
CSV_TABLES: dict[str, tuple[list[str], list[tuple[list[str], list[tuple[str, Rule]]]]]] = {
    "accounts": (
        ["account_id", "created_at", "seats", "acquisition_cost"],
        [
            (["A1", "2024-01-01", "3", "100"], []),
            (["A2", "2024-01-01T00:00:00Z", "", "1e1"], []),
            (["A3", "2024-01-01 10:00:00+02:00", " 5 ", "+.5"], []),
            (["D", "2024-01-01", "", ""], [("account_id", DUP)]),
            (["D", "2024-01-02", "", ""], [("account_id", DUP)]),
            (["", "2024-01-01", "", ""], [("account_id", M)]),
            (["B1", "2024", "", ""], [("created_at", U)]),
            (["B2", "2024-02", "", ""], [("created_at", U)]),
            (["B3", "epoch", "", ""], [("created_at", U)]),
            (["B4", "2024-01-01 10:00:00 UTC", "", ""], [("created_at", U)]),
            (["B5", "2024-01-01", "2.5", ""], [("seats", NI)]),
            (["B6", "2024-01-01", "-1", ""], [("seats", NEG)]),
            (["B7", "2024-01-01", "", "inf"], [("acquisition_cost", U)]),
            (["B8", "2024-01-01", "", "1d"], [("acquisition_cost", U)]),
            (["B9", "2024-01-01", "1e30", ""], [("seats", U)]),
        ],
    ),
    "subscriptions": (
        ["account_id", "start_date", "end_date", "mrr", "term_end", "discount"],
        [
            (["A1", "2024-01-01", "", "100", "2025-01-01", "0.1"], []),
            (["A2", "2024-01-01T02:00:00+02:00", "", "50", "", ""], []),  # midnight UTC
            (["A1", "2024-1-5", "", "5", "", ""], []),
            (["A2", "2024-01-01", "2024-01-01", "10", "", ""], [("end_date", END)]),
            (["A3", "2024-01-01", "", "10", "2023-12-01", ""], [("term_end", END)]),
            (["A3", "2024-01-01 10:30:00", "", "10", "", ""], [("start_date", U)]),
            (["A3", " 2024-01-01", "", "10", "", ""], [("start_date", U)]),
            (["A3", "2024-01-01", "", "-5", "", ""], [("mrr", NEG)]),
            (["A3", "2024-01-01", "", "5", "", "1.5"], [("discount", OOR)]),
            (["ZZ", "2024-01-01", "", "5", "", ""], [("account_id", UNKNOWN)]),
            (["D", "2024-01-01", "", "5", "", ""], [("account_id", UNKNOWN)]),
            (["A1", "2024-01-01", "", "nan", "", ""], [("mrr", U)]),
        ],
    ),
    "events": (
        ["account_id", "user_id", "timestamp", "event_type", "value"],
        [
            (["A1", "u1", "2024-02-01T10:00:00Z", "login", ""], []),
            (["A1", "u1", "2024-02-01 10:00:00+02:00", "", ""], []),
            (["A1", "u1", "2024-02-01T10:00:00.123456789-05:30", "", "2"], []),
            (["A1", "u1", "2024-02-01 10:00", "", ""], []),
            (["A1", "u1", "2024-02-01 10:00:00+02", "", ""], []),
            (["A1", "u1", "2024-02-01 10:00:00-0530", "", " 5 "], []),
            (["A1", "u1", "2024-02-01T10", "", ""], [("timestamp", U)]),
            (["A1", "u1", "2024-02-01T10:00Z", "", ""], [("timestamp", U)]),
            (["A1", "u1", "2024", "", ""], [("timestamp", U)]),
            (["A1", "u1", "2024-02", "", ""], [("timestamp", U)]),
            (["A1", "u1", "yesterday", "", ""], [("timestamp", U)]),
            (["A1", "u1", "infinity", "", ""], [("timestamp", U)]),
            (["A1", "u1", "2024-02-01 24:00:00", "", ""], [("timestamp", U)]),
            (["A1", "u1", "2024-02-30", "", ""], [("timestamp", U)]),
            (["A1", "u1", "2024-02-01\n", "", ""], [("timestamp", U)]),
            (["A1", "u1", "2024-02-01 10:00:00 Europe/Paris", "", ""], [("timestamp", U)]),
            (["ZZ", "u1", "2024-02-01", "", ""], [("account_id", UNKNOWN)]),
            (["A1", "", "2024-02-01", "", ""], [("user_id", M)]),
            (["A1", "  ", "2024-02-01", "", ""], [("user_id", M)]),
            (["A1", "u1", "2024-02-01", "", "NaN"], [("value", U)]),
            (["A1", "u1", "2024-02-01", "", "1_000"], [("value", U)]),
            (["A1", "u1", "2024-02-01", "", "0x10"], [("value", U)]),
            (["A1", "u1", "2024-02-01", "", "-1e400"], [("value", U)]),
        ],
    ),
    "tickets": (
        ["ticket_id", "account_id", "created_at", "resolved_at", "contacts", "csat"],
        [
            (
                ["T1", "A1", "2024-02-01 10:00", "2024-02-01 09:59", "", ""],
                [("resolved_at", RESOLVED)],
            ),
            (["T2", "A1", "2024-02-01 10:00", "2024-02-01 10:00", "1", "5"], []),
            (["T3", "A1", "2024-02-01", "", "0", ""], [("ticket_id", DUP), ("contacts", OOR)]),
            (["T3", "A2", "2024-02-01", "", "1", "6"], [("ticket_id", DUP), ("csat", OOR)]),
            (["T4", "A1", "2024-02-01", "", "1", "4.5"], [("csat", NI)]),
            (
                ["T5", "A1", "2024-02-01T10:00:00Z", "2024-02-01T11:00:00+02:00", "", ""],
                [("resolved_at", RESOLVED)],
            ),
        ],
    ),
    "nps": (
        ["account_id", "responded_at", "score"],
        [
            (["A1", "2024-02-01", "9"], []),
            (["A1", "2024-02-01", "1e1"], []),
            (["A1", "2024-02-01", "11"], [("score", OOR)]),
            (["A1", "2024-02-01", "-1"], [("score", OOR)]),
            (["A1", "2024-02-01", "9.5"], [("score", NI)]),
            (["A1", "2024-02-01", ""], [("score", M)]),
        ],
    ),
    "orders": (
        ["account_id", "ordered_at", "amount"],
        [
            (["A1", "2024-02-01", "10"], []),
            (["A1", "2024-02-01", "-0.5"], [("amount", NEG)]),
            (["A1", "2024-02-01", "  "], [("amount", M)]),
            (["A2", "2024-02-01", "Infinity"], [("amount", U)]),
        ],
    ),
    "costs": (
        ["account_id", "month", "amount"],
        [
            (["A1", "2024-03", "5"], []),
            (["A1", "2024-04-01", "5"], []),
            (["A1", "2024-05-01T00:00:00Z", "5"], []),
            (["A1", "2024-06-01T01:00:00+01:00", "5"], []),  # midnight UTC
            (["A1", "2024-06-15", "5"], []),
            (["A1", "2024", "5"], [("month", U)]),
            (["A1", "soon", "5"], [("month", U)]),
            (["A1", "2024-13", "5"], [("month", U)]),
            (["A1", "2024-6", "5"], [("month", U)]),
            (["A1", " 2024-06", "5"], [("month", U)]),
            (["A1", "2024-05-01T00:00:00+01:00", "5"], [("month", U)]),  # 23:00 UTC
            (["A1", "2024-07", "-1"], [("amount", NEG)]),
        ],
    ),
    "activities": (
        ["account_id", "occurred_at", "kind", "outcome", "owner", "text"],
        [
            (["A1", "2024-02-01T10:00:00Z", "call", "saved", "ann", "renewal talk"], []),
            (["A2", "2024-02-01 10:00", "email", "", "", ""], []),
            (["A1", "2024-02-01", "meeting", "no_response", "b" * 200, "x" * 4000], []),
            (["A1", "2024-02-01", "Call", "", "", ""], [("kind", NOT_ALLOWED)]),
            (["A1", "2024-02-01", "lunch", "", "", ""], [("kind", NOT_ALLOWED)]),
            (["A1", "2024-02-01", "", "", "", ""], [("kind", M)]),
            (["A1", "2024-02-01", "call", "won", "", ""], [("outcome", NOT_ALLOWED)]),
            (["A1", "2024-02-01", "call", "", "b" * 201, ""], [("owner", TOO_LONG)]),
            (["A1", "2024-02-01", "note", "", "", "x" * 4001], [("text", TOO_LONG)]),
            (["ZZ", "2024-02-01", "call", "", "", ""], [("account_id", UNKNOWN)]),
            (["A1", "soon", "call", "", "", ""], [("occurred_at", U)]),
        ],
    ),
}


@pytest.fixture(scope="module")
def csv_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parity") / "csv"
    folder.mkdir()
    for name, (header, rows) in CSV_TABLES.items():
        with (folder / f"{name}.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(values for values, _ in rows)
    return folder


@pytest.fixture(scope="module")
def parquet_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parity") / "parquet"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id,created_at\nA1,2024-01-01\nA2,2024-01-01\n")
    (folder / "subscriptions.csv").write_text(
        "account_id,start_date,end_date,mrr\nA1,2024-01-01,,5\n"
    )
    stamps = pd.to_datetime(
        [
            "2024-02-01 12:00",
            "2024-02-01 00:30",
            None,
            "2024-02-02 09:00",
            "2024-02-03 00:00",
            "2024-02-04 00:00",
        ]
    ).tz_localize("Europe/Paris")
    pq.write_table(
        pa.table(
            {
                "account_id": ["A1", "A2", "A1", "ZZ", "A1", "A2"],
                "user_id": ["u1", "u2", "u3", "u4", "u5", " "],
                "timestamp": pa.array(stamps),
                "value": [1.0, float("nan"), 2.0, 3.0, float("inf"), -4.0],
            }
        ),
        folder / "events.parquet",
        row_group_size=2,
    )
    pq.write_table(
        pa.table(
            {
                "account_id": ["A1", "A1", "A2", "A2"],
                "responded_at": pa.array(
                    [dt.datetime(2024, 1, 1, 9), dt.datetime(2024, 1, 2, 9), None, None]
                ),
                "score": [9.0, 9.5, 12.0, None],
            }
        ),
        folder / "nps.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "account_id": ["A1", "A1", "A2"],
                "month": pa.array(
                    [dt.datetime(2024, 3, 1), dt.datetime(2024, 3, 1, 12), dt.datetime(2024, 4, 1)]
                ),
                "amount": pa.array([1, -2, 3], pa.int32()),
            }
        ),
        folder / "costs.parquet",
    )
    return folder


def _expected_csv_problems() -> list[tuple[str, int, str, Rule]]:
    return [
        (name, row, column, rule)
        for name, (_, rows) in CSV_TABLES.items()
        for row, (_, broken) in enumerate(rows, start=1)
        for column, rule in broken
    ]


def _counts(problems: Any) -> dict[str, dict[str, int]]:
    found: dict[str, Counter[str]] = {}
    for p in problems:
        found.setdefault(p.table, Counter())[f"{p.column}:{p.rule}"] += 1
    return {t: dict(c) for t, c in found.items()}


def _text(value: Any) -> str:
    return "" if value is None or value != value else str(value)


def _duck_quarantine(folder: Path, name: str) -> Counter[tuple[str, ...]]:
    frame = pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)
    frame = frame.drop(columns="_row")
    return Counter(tuple(_text(v) for v in row) for row in frame.itertuples(index=False))


def _spark_quarantine(where: str) -> Counter[tuple[str, ...]]:
    frame = pd.read_parquet(where)
    frame = frame.drop(columns=[c for c in ("_text",) if c in frame.columns])
    return Counter(tuple(_text(v) for v in row) for row in frame.itertuples(index=False))


def _rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """The rows of a clean table as comparable values (NULL as None, times as Timestamps)."""
    out = []
    for row in frame.itertuples(index=False):
        values = []
        for v in row:
            if v is None or (not isinstance(v, str) and pd.isna(v)):
                values.append(None)
            elif isinstance(v, dt.date | pd.Timestamp):
                values.append(pd.Timestamp(v))
            elif isinstance(v, str):
                values.append(v)
            else:
                values.append(float(v))
        out.append(tuple(values))
    return sorted(out, key=repr)


@pytest.fixture(scope="module")
def loaded(
    spark: Any, csv_source: Path, parquet_source: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    from churnrisk.spark import load_spark

    out = tmp_path_factory.mktemp("parity_quarantine")
    return {
        kind: (
            load(source, quarantine_dir=out / f"duck_{kind}"),
            load_spark(str(source), spark, quarantine_dir=out / f"spark_{kind}"),
            out / f"duck_{kind}",
        )
        for kind, source in (("csv", csv_source), ("parquet", parquet_source))
    }


def test_duckdb_finds_the_hand_worked_problems(loaded):
    duck, _, _ = loaded["csv"]
    got = [(p.table, p.row, p.column, p.rule) for p in duck.report.problems]
    assert got == _expected_csv_problems()
    assert duck.report.tables == {
        name: TableReport(
            rows=len(rows),
            valid=sum(not broken for _, broken in rows),
            quarantined=sum(bool(broken) for _, broken in rows),
        )
        for name, (_, rows) in CSV_TABLES.items()
    }


def test_duckdb_reads_the_accepted_texts_as_written(loaded):
    duck, _, _ = loaded["csv"]
    con = duck.dataset.con
    assert con.execute("SELECT created_at FROM accounts ORDER BY account_id").fetchall() == [
        (dt.datetime(2024, 1, 1),),
        (dt.datetime(2024, 1, 1),),
        (dt.datetime(2024, 1, 1, 8),),
    ]
    assert con.execute(
        "SELECT seats, acquisition_cost FROM accounts WHERE account_id = 'A3'"
    ).fetchall() == [(5, 0.5)]
    assert con.execute("SELECT timestamp FROM events").fetchall() == [
        (dt.datetime(2024, 2, 1, 10),),
        (dt.datetime(2024, 2, 1, 8),),
        (dt.datetime(2024, 2, 1, 15, 30, 0, 123456),),
        (dt.datetime(2024, 2, 1, 10),),
        (dt.datetime(2024, 2, 1, 8),),
        (dt.datetime(2024, 2, 1, 15, 30),),
    ]
    assert con.execute("SELECT month FROM costs").fetchall() == [
        (dt.date(2024, 3, 1),),
        (dt.date(2024, 4, 1),),
        (dt.date(2024, 5, 1),),
        (dt.date(2024, 6, 1),),
        (dt.date(2024, 6, 15),),
    ]


def test_duckdb_checks_typed_parquet_columns(loaded):
    duck, _, _ = loaded["parquet"]
    assert [(p.table, p.row, p.column, p.rule, p.value) for p in duck.report.problems] == [
        ("events", 2, "value", U, "nan"),
        ("events", 3, "timestamp", M, None),
        ("events", 4, "account_id", UNKNOWN, "ZZ"),
        ("events", 5, "value", U, "inf"),
        ("events", 6, "user_id", M, " "),
        ("nps", 2, "score", NI, "9.5"),
        ("nps", 3, "responded_at", M, None),
        ("nps", 3, "score", OOR, "12.0"),
        ("nps", 4, "responded_at", M, None),
        ("nps", 4, "score", M, None),
        ("costs", 2, "month", U, "2024-03-01 12:00:00"),
        ("costs", 2, "amount", NEG, "-2"),
    ]
    assert duck.dataset.con.execute("SELECT timestamp FROM events").fetchall() == [
        (dt.datetime(2024, 2, 1, 11),)
    ]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_spark_finds_what_duckdb_finds(loaded, kind):
    duck, spark_ds, duck_quarantine = loaded[kind]
    assert spark_ds.report.tables == duck.report.tables
    assert spark_ds.report.broken == _counts(duck.report.problems)
    assert set(spark_ds.report.quarantine) == {
        name for name, t in duck.report.tables.items() if t.quarantined
    }
    if kind == "csv":  # the same source text on both sides
        for name, where in spark_ds.report.quarantine.items():
            assert _spark_quarantine(where) == _duck_quarantine(duck_quarantine, name), name
    else:
        for name, where in spark_ds.report.quarantine.items():
            problems = pd.read_csv(duck_quarantine / f"{name}.csv")["_problems"]
            assert sorted(pd.read_parquet(where)["_problems"]) == sorted(problems), name


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_spark_keeps_the_rows_duckdb_keeps(loaded, kind):
    duck, spark_ds, _ = loaded[kind]
    for name in TABLES:
        assert _rows(spark_ds.frame(name)) == _rows(duck.dataset.frame(name)), name
