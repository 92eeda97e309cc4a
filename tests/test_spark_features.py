"""The Spark engine computes the DuckDB engine's panel, row for row.

Both engines run the one Ibis definition of ``churnrisk.features``; these tests prove
it on a generated world (features and labels, through ``churnrisk features build
--engine spark``) and on a hand-made CSV world built around the cases where engines
differ by default: division by zero, decimal literals, time zones and the edges of the
as-of range join. Spark runs few, small queries: one shared local session
(``spark_fixtures``), one feature query per test.
"""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")

from cli_invoke import invoke
from spark_fixtures import spark_fixture  # noqa: F401

from churnrisk.config import LabelConfig
from churnrisk.contract import Rule
from churnrisk.features import (
    FEATURES,
    LABEL_COLUMNS,
    build_features,
    learn_vocabulary,
    panel_features,
)
from churnrisk.generate import generate_world
from churnrisk.validate import TableReport, load

WORLD_DATES = [date(2025, 3, 1), date(2025, 7, 1), date(2025, 10, 1), date(2025, 12, 1)]
"""Early dates have closed label windows, late ones NULL labels."""

A = date(2025, 3, 1)
B = date(2025, 6, 1)
EXACT = {f.name for f in FEATURES if f.dtype == "int"} | {"churned"}
TEXT = {f.name for f in FEATURES if f.dtype == "category"}


def _tolerant(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def assert_same_panel(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Row for row: keys, integers, dates, strings and NULLs exactly; floats within 1e-9."""
    got = got.assign(as_of=pd.to_datetime(got["as_of"]).astype("datetime64[ns]"))
    got = got.sort_values(["as_of", "account_id"]).reset_index(drop=True)
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    assert got["account_id"].astype(str).tolist() == expected["account_id"].astype(str).tolist()
    assert got["as_of"].tolist() == expected["as_of"].tolist()
    differences: list[str] = []
    for column in expected.columns[2:]:
        for i, (x, y) in enumerate(zip(got[column], expected[column], strict=True)):
            x = None if pd.isna(x) else x
            y = None if pd.isna(y) else y
            if x is None or y is None:
                same = x is None and y is None
            elif column in TEXT:
                same = str(x) == str(y)
            elif column in EXACT:
                same = float(x) == float(y) and float(x).is_integer()
            else:
                same = math.isfinite(float(x)) and _tolerant(float(x), float(y))
            if not same:
                differences.append(f"{column} row {i} ({got.account_id[i]}): {x!r} != {y!r}")
    assert not differences, "\n".join(differences[:20])


# -- a generated world ------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spark_world")
    generate_world(out, accounts=200, months=14, seed=7)
    return out


def test_cli_builds_the_duckdb_panel_on_spark_from_a_partitioned_lake(spark, world, tmp_path):
    # a lake layout: one table as a partitioned folder, the others as Parquet files
    lake = tmp_path / "lake"
    lake.mkdir()
    for name in ("accounts", "subscriptions", "tickets", "nps", "orders", "costs"):
        (lake / f"{name}.parquet").write_bytes((world / f"{name}.parquet").read_bytes())
    events = spark.read.parquet(str(world / "events.parquet"))
    events.write.partitionBy("event_type").parquet(str(lake / "events"))

    out = tmp_path / "features"
    code = invoke(
        [
            *("features", "build", lake, "--out", out, "--engine", "spark", "--with-labels"),
            *("--start", WORLD_DATES[0], "--end", WORLD_DATES[-1], "--spark-master", "local[2]"),
        ]
    )
    assert code == 0
    got = pd.read_parquet(out)
    got = got[got["as_of"].isin(WORLD_DATES)]

    expected = build_features(load(world).dataset, WORLD_DATES, labels=LabelConfig())
    assert len(expected) > 400
    assert expected["churned"].notna().any()
    assert expected["churned"].isna().any()
    # the CLI wrote every monthly date of the range; compare the four of the DuckDB run
    assert_same_panel(got.reset_index(drop=True), expected)
    assert set(LABEL_COLUMNS) <= set(got.columns)


def test_vocabulary_features_are_learned_and_built_alike_on_spark(spark, world):
    from churnrisk.spark import build_features_spark, load_spark

    duck = load(world).dataset
    ds = load_spark(str(world), spark)
    vocabulary = learn_vocabulary(duck, before=WORLD_DATES[0])
    assert vocabulary.event_types
    assert vocabulary.priorities
    assert learn_vocabulary(ds, before=WORLD_DATES[0]) == vocabulary
    features = panel_features(vocabulary)
    got = build_features_spark(ds, WORLD_DATES, features=features).toPandas()
    expected = build_features(duck, WORLD_DATES, features=features)
    assert len(expected.columns) > len(FEATURES) + 2
    assert expected.filter(like="type_").gt(0).any().any()
    assert_same_panel(got, expected)


# -- a hand-made world: where engines differ by default ----------------------------------

EPOCH = "2024-01-01T00:00:00Z"

EDGE_TABLES: dict[str, list[dict[str, Any]]] = {
    "accounts": [
        {"account_id": a, "created_at": EPOCH, "segment": "smb", "seats": "3"}
        for a in ("base", "div0", "decimal", "tz", "edges", "churner")
    ]
    + [
        {"account_id": "dup", "created_at": EPOCH},  # duplicate_key: both rows quarantined
        {"account_id": "dup", "created_at": EPOCH},
        {"account_id": "late", "created_at": "2025-02-28T23:30:00-01:00"},  # after a, UTC
        {"account_id": "bad_seats", "created_at": EPOCH, "seats": "2.5"},  # not_integer
        {"account_id": "", "created_at": EPOCH},  # missing_value
    ],
    "subscriptions": [
        {"account_id": a, "start_date": "2024-01-01", "end_date": "", "mrr": "100"}
        for a in ("base", "tz", "edges")
    ]
    + [
        # seats 0: active users per seat divides by zero
        {"account_id": "div0", "start_date": "2024-01-01", "mrr": "50", "seats": "0"},
        # 12 / 365 and odd MRRs: decimal literals must stay doubles; a discount, a term
        # and a second plan signed inside the last 90 days of a (a plan change)
        {
            "account_id": "decimal",
            "start_date": "2024-01-01",
            "mrr": "99.99",
            "seats": "7",
            "plan": "pro",
            "discount": "0.15",
            "term_end": "2025-12-31",
        },
        {
            "account_id": "decimal",
            "start_date": "2025-02-10",
            "end_date": "2025-04-17",
            "mrr": "0.1",
            "plan": "addon",
            "seats": "2",
        },
        # churns inside the horizon of a: ends 2025-04-01
        {
            "account_id": "churner",
            "start_date": "2024-01-01",
            "end_date": "2025-04-01",
            "mrr": "33.3",
        },
        {"account_id": "late", "start_date": "2024-01-01", "mrr": "10"},
        {"account_id": "base", "start_date": "2025-01-01", "end_date": "2025-01-01", "mrr": "1"},
        {"account_id": "base", "start_date": "2025-01-02", "mrr": "-5"},  # negative
        {"account_id": "ghost", "start_date": "2025-01-02", "mrr": "5"},  # unknown_account
        {"account_id": "base", "start_date": "2025-01-02T10:00:00Z", "mrr": "5"},  # not a date
    ],
    "events": [
        # decimal: 7 user-days in the last 30 days -> dau 7/30, not a rounded DECIMAL
        *(
            {"account_id": "decimal", "user_id": f"u{i}", "timestamp": f"2025-02-{10 + i}"}
            for i in range(7)
        ),
        # div0: usage now, none in the 30 days before: trend and MAU change divide by 0
        {"account_id": "div0", "user_id": "u", "timestamp": "2025-02-20T12:00:00Z"},
        # time zones: offsets convert to UTC, naive text is UTC
        {"account_id": "tz", "user_id": "in1", "timestamp": "2025-03-01T00:30:00+01:00"},
        {"account_id": "tz", "user_id": "out1", "timestamp": "2025-02-28T23:30:00-01:00"},
        {"account_id": "tz", "user_id": "in2", "timestamp": "2025-02-28T23:59:59.999999"},
        {"account_id": "tz", "user_id": "out2", "timestamp": "2025-03-01T00:00:00Z"},
        {"account_id": "tz", "user_id": "in3", "timestamp": "2025-01-30T00:00:00+00:00"},
        {"account_id": "tz", "user_id": "out3", "timestamp": "2025-01-30T00:30:00+01:00"},
        # window edges of the range join at a = 2025-03-01 (30 and 90 days)
        {"account_id": "edges", "user_id": "a", "timestamp": "2025-01-30T00:00:00Z"},
        {"account_id": "edges", "user_id": "b", "timestamp": "2025-01-29T23:59:59.999999Z"},
        {"account_id": "edges", "user_id": "c", "timestamp": "2024-12-01T00:00:00Z"},
        {"account_id": "edges", "user_id": "d", "timestamp": "2024-11-30T23:59:59Z"},
        {"account_id": "edges", "user_id": "e", "timestamp": "2025-05-31T23:59:59Z"},
        {"account_id": "ghost", "user_id": "u", "timestamp": "2025-02-01"},  # unknown_account
        {"account_id": "edges", "user_id": "u", "timestamp": "yesterday"},  # unparseable
    ],
    "tickets": [
        # div0: no ticket resolved in 90 days with contacts -> first contact rate 0/0
        {"ticket_id": "t1", "account_id": "div0", "created_at": "2025-02-01T00:00:00Z"},
        {
            "ticket_id": "t2",
            "account_id": "edges",
            "created_at": "2024-12-01T00:00:00Z",
            "resolved_at": "2025-03-01T00:00:00Z",  # resolved exactly at a: still open
            "contacts": "1",
            "priority": "URGENT",
        },
        {
            "ticket_id": "t3",
            "account_id": "edges",
            "created_at": "2024-12-01T00:00:00Z",
            "resolved_at": "2025-02-28T23:00:00+01:00",  # 22:00 UTC, resolved before a
            "contacts": "2",
            "csat": "2",
        },
        {
            "ticket_id": "t4",
            "account_id": "decimal",
            "created_at": "2025-02-01T00:00:00Z",
            "resolved_at": "2025-02-01T07:20:00Z",  # 7.333... hours
            "contacts": "1",
            "csat": "5",
        },
        {
            "ticket_id": "t5",
            "account_id": "decimal",
            "created_at": "2025-02-02T00:00:00Z",
            "resolved_at": "2025-02-01T00:00:00Z",  # resolved_before_created
        },
        {"ticket_id": "t6", "account_id": "base", "created_at": EPOCH, "csat": "6"},  # range
    ],
    "nps": [
        {"account_id": "edges", "responded_at": "2024-03-01T00:00:00Z", "score": "9"},
        {"account_id": "edges", "responded_at": "2024-02-29T23:59:59Z", "score": "2"},
        {"account_id": "tz", "responded_at": "2025-02-28T20:00:00-03:00", "score": "3"},
        {"account_id": "tz", "responded_at": "2025-02-28T20:00:00Z", "score": "8"},
        {"account_id": "decimal", "responded_at": "2025-01-05T00:00:00Z", "score": "7"},
        {"account_id": "decimal", "responded_at": "2025-01-06T00:00:00Z", "score": "8"},
        {"account_id": "decimal", "responded_at": "2025-01-07T00:00:00Z", "score": "8"},
        {"account_id": "base", "responded_at": "2025-01-07T00:00:00Z", "score": "11"},  # range
    ],
    "orders": [
        {"account_id": "edges", "ordered_at": "2024-12-01T00:00:00Z", "amount": "0.3"},
        {"account_id": "edges", "ordered_at": "2024-11-30T23:59:59Z", "amount": "1000"},
        {"account_id": "decimal", "ordered_at": "2025-03-01T00:00:00+01:00", "amount": "0.1"},
        {"account_id": "decimal", "ordered_at": "2025-03-15T00:00:00Z", "amount": "0.2"},
    ],
}
"""Rows as CSV text; ``costs`` is absent. Rows marked with a rule break it."""

EDGE_MALFORMED: dict[str, list[str]] = {
    # too many fields; Spark's split of it holds account "base", which must not make the
    # sound "base" row a duplicate_key
    "accounts": ["base,2024-01-01T00:00:00Z,smb,3,surplus"],
    # too few fields
    "events": ["edges,u-short"],
    # too many; Spark's split of it would be a valid order of 0.3 in the 90-day window
    "orders": ["edges,2024-12-01T00:00:00Z,0.3,0.3"],
}
"""Malformed lines (rule malformed_line), written after the first two rows of a table."""


def _write_csv(folder: Path) -> None:
    folder.mkdir()
    for name, rows in EDGE_TABLES.items():
        columns = list(dict.fromkeys(k for row in rows for k in row))
        with (folder / f"{name}.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, columns)
            writer.writeheader()
            writer.writerows(rows[:2])
            fh.writelines(f"{line}\r\n" for line in EDGE_MALFORMED.get(name, []))
            writer.writerows(rows[2:])


@pytest.fixture(scope="module")
def edge_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spark_edges") / "data"
    _write_csv(folder)
    return folder


def _by_account(df: pd.DataFrame, column: str, day: date = A) -> dict[str, Any]:
    rows = df[pd.to_datetime(df["as_of"]) == pd.Timestamp(day)]
    return {
        a: (None if pd.isna(v) else v) for a, v in zip(rows.account_id, rows[column], strict=True)
    }


def test_edge_cases_validate_and_build_alike_on_both_engines(spark, edge_world, tmp_path):
    from churnrisk.spark import build_features_spark, load_spark

    quarantine = tmp_path / "quarantine"
    ds = load_spark(str(edge_world), spark, quarantine_dir=quarantine)
    duck = load(edge_world, quarantine_dir=tmp_path / "duck_quarantine")

    # the contract's rules: the same counts, the same broken rules, nothing dropped silently
    assert ds.report.tables == duck.report.tables
    assert ds.report.absent == duck.report.absent == ["costs", "activities"]
    expected_broken: dict[str, Counter[str]] = {}
    for p in duck.report.problems:
        expected_broken.setdefault(p.table, Counter())[f"{p.column}:{p.rule}"] += 1
    assert ds.report.broken == {t: dict(c) for t, c in expected_broken.items()}
    malformed = {
        t: c[":malformed_line"] for t, c in expected_broken.items() if c[":malformed_line"]
    }
    assert malformed == {name: len(lines) for name, lines in EDGE_MALFORMED.items()}
    assert set(ds.report.quarantine) == {t for t, r in duck.report.tables.items() if r.quarantined}
    for name, where in ds.report.quarantine.items():
        written = pd.read_parquet(where)
        assert len(written) == duck.report.tables[name].quarantined
        assert written["_problems"].str.len().gt(0).all()
    assert ds.report.exit_code == 1

    labels = LabelConfig(horizon_days=60, grace_days=7, revenue_months=2)
    got = build_features_spark(ds, [A, B], labels=labels).toPandas()
    expected = build_features(duck.dataset, [A, B], labels=labels)
    assert_same_panel(got, expected)

    # and the cases themselves, by hand
    assert _by_account(got, "dau_30d")["decimal"] == 7 / 30  # a DOUBLE, not DECIMAL(.., 6)
    assert _by_account(got, "active_users_per_seat")["div0"] is None  # 1 user / 0 seats
    assert _by_account(got, "usage_trend_30d")["div0"] is None  # (1 - 0) / 0
    assert _by_account(got, "mau_change_30d")["div0"] is None
    assert _by_account(got, "fcr_rate_90d")["div0"] is None  # 0 / 0
    assert _by_account(got, "median_resolution_hours_90d")["decimal"] == pytest.approx(22 / 3)
    assert _by_account(got, "nps_mean_365d")["decimal"] == pytest.approx(23 / 3)
    assert _by_account(got, "mau_30d")["tz"] == 3  # in1, in2, in3; the outs are outside
    assert _by_account(got, "active_days_30d")["tz"] == 2  # 2025-01-30 and 2025-02-28 UTC
    assert _by_account(got, "events_30d")["edges"] == 1  # a - 30 days exactly, not a - 30 - 1 us
    assert _by_account(got, "events_90d")["edges"] == 3  # a, b and c (a - 90 days exactly)
    assert _by_account(got, "tickets_open")["edges"] == 1  # resolved at a: still open
    assert _by_account(got, "urgent_open")["edges"] == 1
    assert _by_account(got, "low_csat_90d")["edges"] == 1
    assert _by_account(got, "nps_responses_365d")["edges"] == 1  # a - 365 days exactly
    assert _by_account(got, "nps_last_score")["tz"] == 3  # 23:00 UTC, later than 20:00 UTC
    assert _by_account(got, "orders_amount_90d")["edges"] == 0.3
    assert _by_account(got, "discount")["decimal"] == pytest.approx(0.15)
    assert _by_account(got, "term_length_days")["decimal"] == 730  # 2024-01-01 to 2025-12-31
    assert _by_account(got, "plan_changes_90d")["decimal"] == 1  # "addon" joins on 2025-02-10
    assert _by_account(got, "seats_change_90d")["decimal"] == 2
    assert "late" not in _by_account(got, "mrr")  # created after a in UTC
    churned = _by_account(got, "churned")
    assert churned["churner"] == 1
    assert churned["base"] == 0
    assert _by_account(got, "churned", B)["base"] is None  # window not closed


def test_spark_quarantines_malformed_csv_lines_as_duckdb_does(spark, tmp_path):
    from churnrisk.spark import load_spark

    src = tmp_path / "data"
    src.mkdir()
    (src / "accounts.csv").write_text(
        "account_id,created_at,note\nA1,2026-01-01,x\nA1,2026-01-02\nA2,2026-01-02,y\n"
    )
    (src / "subscriptions.csv").write_text(
        "account_id,start_date,end_date,mrr\n"
        "A1,2026-01-01,,100\n"
        '"A\n2",2026-01-01,,5\n'  # a quoted line break: one sound record, unknown account
        "A2,2026-01-01,,5,9\n"  # too many fields
        "A2,2026-01-01,,-5\n"
    )
    ds = load_spark(str(src), spark, quarantine_dir=tmp_path / "q")
    duck = load(src)
    assert (
        ds.report.tables
        == duck.report.tables
        == {
            "accounts": TableReport(rows=3, valid=2, quarantined=1),
            "subscriptions": TableReport(rows=4, valid=1, quarantined=3),
        }
    )
    assert ds.report.broken == {
        "accounts": {":malformed_line": 1},
        "subscriptions": {
            ":malformed_line": 1,
            "account_id:unknown_account": 1,
            "mrr:negative": 1,
        },
    }
    assert [(p.table, p.row, p.column, p.rule) for p in duck.report.problems] == [
        ("accounts", 2, "", Rule.MALFORMED_LINE),
        ("subscriptions", 2, "account_id", Rule.UNKNOWN_ACCOUNT),
        ("subscriptions", 3, "", Rule.MALFORMED_LINE),
        ("subscriptions", 4, "mrr", Rule.NEGATIVE),
    ]
    assert pq.read_table(ds.report.quarantine["accounts"]).to_pylist() == [
        {
            "account_id": None,
            "created_at": None,
            "note": None,
            "_text": "A1,2026-01-02",
            "_problems": ":malformed_line",
        }
    ]
    subs = pd.read_parquet(ds.report.quarantine["subscriptions"])
    assert sorted(subs["_problems"]) == [
        ":malformed_line",
        "account_id:unknown_account",
        "mrr:negative",
    ]
    assert subs.loc[subs["_problems"] == ":malformed_line", "_text"].tolist() == [
        "A2,2026-01-01,,5,9"
    ]
    assert sorted(ds.frame("accounts")["account_id"]) == ["A1", "A2"]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ('A2,2026-01-02,"2', "Value with unterminated quote found."),
        ('A2,2026-01-02,"2"0', "Value with unterminated quote found."),
    ],
)
def test_spark_refuses_a_csv_line_it_cannot_mark(spark, tmp_path, line, error):
    from churnrisk.errors import DataError
    from churnrisk.spark import load_spark

    (tmp_path / "accounts.csv").write_text("account_id,created_at\nA1,2026-01-01\n")
    (tmp_path / "subscriptions.csv").write_text(
        f"account_id,start_date,mrr\nA1,2026-01-01,1\n{line}\nA1,2026-01-03,1\n"
    )
    with pytest.raises(
        DataError,
        match=rf"subscriptions.csv line 3: {re.escape(error)} .*the Spark engine cannot set such "
        r"a line aside",
    ):
        load_spark(str(tmp_path), spark)


def test_spark_absent_pyspark_is_a_config_error():
    code = (
        "import sys; sys.modules['pyspark'] = None\n"
        "import churnrisk.cli, churnrisk.spark\n"
        "from churnrisk.errors import ConfigError\n"
        "try:\n    churnrisk.spark.spark_session()\n"
        "except ConfigError as err:\n    print(err)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install churnrisk[spark]" in done.stdout


def test_load_spark_says_what_is_missing(spark, world, tmp_path):
    from churnrisk.errors import DataError
    from churnrisk.spark import load_spark

    (tmp_path / "accounts.parquet").write_bytes((world / "accounts.parquet").read_bytes())
    with pytest.raises(DataError, match=r"required table.*subscriptions"):
        load_spark(str(tmp_path), spark)
    pd.DataFrame({"account_id": ["a"], "mrr": [1.0]}).to_parquet(tmp_path / "subscriptions.parquet")
    with pytest.raises(DataError, match=r"lacks required column.*start_date"):
        load_spark(str(tmp_path), spark)
    with pytest.raises(DataError, match="does not exist"):
        load_spark(str(tmp_path / "nowhere"), spark)
    pd.DataFrame({"Account_ID": ["a"], "start_date": ["2026-01-01"], "mrr": [1.0]}).to_parquet(
        tmp_path / "subscriptions.parquet"
    )
    with pytest.raises(DataError, match=r"rename 'Account_ID' to 'account_id'$"):
        load_spark(str(tmp_path), spark)


def test_load_spark_refuses_a_required_table_without_a_valid_row(spark, world, tmp_path):
    from churnrisk.spark import load_spark
    from churnrisk.validate import UnusableDataError

    (tmp_path / "accounts.parquet").write_bytes((world / "accounts.parquet").read_bytes())
    subs = pd.DataFrame(
        {"account_id": ["nobody"], "start_date": ["03/15/2025"], "end_date": [None], "mrr": [1.0]}
    )
    subs.to_parquet(tmp_path / "subscriptions.parquet")
    with pytest.raises(UnusableDataError, match=r"^required table 'subscriptions' has no valid"):
        load_spark(str(tmp_path), spark)
