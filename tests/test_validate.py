import datetime as dt
import json
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_invoke import invoke
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from churnrisk.contract import Rule
from churnrisk.errors import DataError
from churnrisk.validate import (
    Problem,
    TableReport,
    UnusableDataError,
    csv_unsplittable_line,
    load,
)

ACCOUNTS = "account_id,created_at\nA1,2026-01-01\nA2,2026-01-02\n"
SUBSCRIPTIONS = (
    "account_id,start_date,end_date,mrr,term_end\n"
    "A1,2026-01-01,,100,2027-01-01\nA2,2026-01-01,2026-03-01,50,2026-03-01\n"
)


def _write(folder: Path, **tables: str) -> Path:
    """Write a source folder: accounts and subscriptions by default, then ``tables``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"accounts": ACCOUNTS, "subscriptions": SUBSCRIPTIONS, **tables}
    for name, text in files.items():
        if text is not None:
            (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return folder


def _only(result, table):
    return [p for p in result.report.problems if p.table == table]


def load_report(source, quarantine=None):
    """Return the report of a source that validation finds unusable."""
    with pytest.raises(UnusableDataError, match=r"^required table") as caught:
        load(source, quarantine_dir=quarantine)
    return caught.value.report


# ------------------------------------------------------------------ clean source


def test_clean_source_gives_exit_code_0_and_no_problems(tmp_path):
    result = load(_write(tmp_path / "src"), quarantine_dir=tmp_path / "q")
    report = result.report
    assert report.exit_code == 0
    assert report.problems == []
    assert report.to_dict() == {
        "tables": {
            "accounts": {"rows": 2, "valid": 2, "quarantined": 0},
            "subscriptions": {"rows": 2, "valid": 2, "quarantined": 0},
        },
        "causes": [],
        "problems": [],
    }
    assert report.absent == ["events", "tickets", "nps", "orders", "costs", "activities"]
    assert result.dataset.absent == frozenset(report.absent)
    assert not (tmp_path / "q").exists()
    subs = result.dataset.frame("subscriptions")
    assert list(subs.columns) == [
        "account_id",
        "start_date",
        "end_date",
        "mrr",
        "plan",
        "seats",
        "term_end",
        "discount",
    ]
    assert subs["mrr"].tolist() == [100.0, 50.0]
    assert subs["plan"].isna().all()
    assert result.dataset.frame("events").empty


def test_contract_types_in_dataset(tmp_path):
    result = load(_write(tmp_path))
    types = dict(
        result.dataset.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'subscriptions'"
        ).fetchall()
    )
    assert types == {
        "account_id": "VARCHAR",
        "start_date": "DATE",
        "end_date": "DATE",
        "mrr": "DOUBLE",
        "plan": "VARCHAR",
        "seats": "BIGINT",
        "term_end": "DATE",
        "discount": "DOUBLE",
    }
    assert result.dataset.con.execute("SELECT current_setting('TimeZone')").fetchall() == [("UTC",)]


def test_extra_columns_are_ignored_with_a_warning(tmp_path):
    src = _write(tmp_path, accounts="account_id,created_at,colour\nA1,2026-01-01,red\n")
    src.joinpath("subscriptions.csv").write_text(
        "account_id,start_date,end_date,mrr\nA1,2026-01-01,,1\n"
    )
    result = load(src)
    assert "colour" not in result.dataset.frame("accounts").columns
    assert result.report.warnings == [
        f"{src / 'accounts.csv'}: column(s) colour are not in the contract of 'accounts' "
        "and were ignored"
    ]


# ------------------------------------------------------------------ one test per rule


def test_missing_value(tmp_path):
    result = load(_write(tmp_path, accounts="account_id,created_at\nA1,2026-01-01\n,2026-01-02\n"))
    assert _only(result, "accounts") == [
        Problem("accounts", 2, "account_id", Rule.MISSING_VALUE, None)
    ]
    assert result.report.tables["accounts"] == TableReport(rows=2, valid=1, quarantined=1)
    assert result.report.exit_code == 1


def test_blank_value_is_missing_and_keeps_its_text(tmp_path):
    text = "account_id,ordered_at,amount\nA1,2026-01-01,  \n"
    result = load(_write(tmp_path, orders=text))
    assert result.report.problems == [Problem("orders", 1, "amount", Rule.MISSING_VALUE, "  ")]


@pytest.mark.parametrize(
    ("table", "text", "column", "value"),
    [
        (
            "orders",
            "account_id,ordered_at,amount\nA1,2026-01-01,1\nA1,yesterday,1\n",
            "ordered_at",
            "yesterday",
        ),
        (
            "orders",
            "account_id,ordered_at,amount\nA1,2026-01-01,1\nA1,2026-01-01,ten\n",
            "amount",
            "ten",
        ),
        (
            "orders",
            "account_id,ordered_at,amount\nA1,2026-01-01,1\nA1,2026-01-01,nan\n",
            "amount",
            "nan",
        ),
        (
            "costs",
            "account_id,month,amount\nA1,2026-01,1\nA1,2026-02-30,1\n",
            "month",
            "2026-02-30",
        ),
        ("costs", "account_id,month,amount\nA1,2026-01,1\nA1,epoch,1\n", "month", "epoch"),
    ],
)
def test_unparseable(tmp_path, table, text, column, value):
    result = load(_write(tmp_path, **{table: text}))
    assert result.report.problems == [Problem(table, 2, column, Rule.UNPARSEABLE, value)]
    assert result.report.tables[table] == TableReport(rows=2, valid=1, quarantined=1)


def test_date_with_time_of_day_is_unparseable_not_truncated(tmp_path):
    subs = (
        "account_id,start_date,end_date,mrr\nA1,2026-01-01 00:00:00,,1\nA1,2026-01-01 10:30:00,,1\n"
    )
    result = load(_write(tmp_path, subscriptions=subs))
    assert result.report.problems == [
        Problem("subscriptions", 2, "start_date", Rule.UNPARSEABLE, "2026-01-01 10:30:00")
    ]
    assert result.dataset.frame("subscriptions")["start_date"].tolist() == [
        pd.Timestamp("2026-01-01")
    ]


def test_costs_month_accepts_year_month(tmp_path):
    result = load(
        _write(tmp_path, costs="account_id,month,amount\nA1,2026-03,5\nA2,2026-04-01,6\n")
    )
    assert result.report.problems == []
    frame = result.dataset.frame("costs")
    assert frame["month"].tolist() == [pd.Timestamp("2026-03-01"), pd.Timestamp("2026-04-01")]


def test_negative(tmp_path):
    subs = "account_id,start_date,end_date,mrr,seats\nA1,2026-01-01,,-0.5,-1\nA2,2026-01-01,,1,1\n"
    result = load(_write(tmp_path, subscriptions=subs))
    assert result.report.problems == [
        Problem("subscriptions", 1, "mrr", Rule.NEGATIVE, "-0.5"),
        Problem("subscriptions", 1, "seats", Rule.NEGATIVE, "-1"),
    ]
    assert result.report.tables["subscriptions"] == TableReport(rows=2, valid=1, quarantined=1)


def test_out_of_range(tmp_path):
    nps = "account_id,responded_at,score\nA1,2026-01-01,10\nA1,2026-01-01,11\nA1,2026-01-01,0\n"
    tickets = (
        "ticket_id,account_id,created_at,contacts,csat\n"
        "T1,A1,2026-01-01,0,5\n"
        "T2,A1,2026-01-01,1,6\n"
        "T3,A1,2026-01-01,1,1\n"
    )
    result = load(_write(tmp_path, nps=nps, tickets=tickets))
    assert result.report.problems == [
        Problem("tickets", 1, "contacts", Rule.OUT_OF_RANGE, "0"),
        Problem("tickets", 2, "csat", Rule.OUT_OF_RANGE, "6"),
        Problem("nps", 2, "score", Rule.OUT_OF_RANGE, "11"),
    ]
    assert result.report.tables["nps"] == TableReport(rows=3, valid=2, quarantined=1)
    assert result.report.tables["tickets"] == TableReport(rows=3, valid=1, quarantined=2)


def test_not_integer(tmp_path):
    nps = "account_id,responded_at,score\nA1,2026-01-01,7.5\nA1,2026-01-01,7.0\n"
    result = load(_write(tmp_path, nps=nps))
    assert result.report.problems == [Problem("nps", 1, "score", Rule.NOT_INTEGER, "7.5")]
    assert result.dataset.frame("nps")["score"].tolist() == [7]


def test_duplicate_key_quarantines_every_row_sharing_it(tmp_path):
    accounts = "account_id,created_at\nA1,2026-01-01\nA2,2026-01-01\nA1,2026-01-05\n"
    result = load(_write(tmp_path, accounts=accounts))
    assert _only(result, "accounts") == [
        Problem("accounts", 1, "account_id", Rule.DUPLICATE_KEY, "A1"),
        Problem("accounts", 3, "account_id", Rule.DUPLICATE_KEY, "A1"),
    ]
    assert result.report.tables["accounts"] == TableReport(rows=3, valid=1, quarantined=2)
    # A1 is no longer a valid account, so its subscription is unknown too
    assert _only(result, "subscriptions") == [
        Problem("subscriptions", 1, "account_id", Rule.UNKNOWN_ACCOUNT, "A1")
    ]


def test_duplicate_ticket_id(tmp_path):
    tickets = (
        "ticket_id,account_id,created_at\nT1,A1,2026-01-01\nT1,A2,2026-01-02\nT2,A1,2026-01-01\n"
    )
    result = load(_write(tmp_path, tickets=tickets))
    assert result.report.problems == [
        Problem("tickets", 1, "ticket_id", Rule.DUPLICATE_KEY, "T1"),
        Problem("tickets", 2, "ticket_id", Rule.DUPLICATE_KEY, "T1"),
    ]


def test_unknown_account(tmp_path):
    events = "account_id,user_id,timestamp\nA1,u1,2026-01-01 10:00:00\nZZ,u1,2026-01-01 10:00:00\n"
    result = load(_write(tmp_path, events=events))
    assert result.report.problems == [
        Problem("events", 2, "account_id", Rule.UNKNOWN_ACCOUNT, "ZZ")
    ]
    assert result.report.tables["events"] == TableReport(rows=2, valid=1, quarantined=1)
    assert result.dataset.frame("events")["account_id"].tolist() == ["A1"]


def test_end_not_after_start(tmp_path):
    subs = (
        "account_id,start_date,end_date,mrr\n"
        "A1,2026-01-01,2026-01-01,1\n"
        "A1,2026-01-01,2025-12-01,1\n"
        "A1,2026-01-01,2026-01-02,1\n"
    )
    result = load(_write(tmp_path, subscriptions=subs))
    assert result.report.problems == [
        Problem("subscriptions", 1, "end_date", Rule.END_NOT_AFTER_START, "2026-01-01"),
        Problem("subscriptions", 2, "end_date", Rule.END_NOT_AFTER_START, "2025-12-01"),
    ]
    assert result.report.tables["subscriptions"] == TableReport(rows=3, valid=1, quarantined=2)


def test_ticket_resolved_before_it_was_created(tmp_path):
    tickets = (
        "ticket_id,account_id,created_at,resolved_at\n"
        "T1,A1,2026-01-02 10:00,2026-01-02 09:59\n"
        "T2,A1,2026-01-02 10:00,2026-01-02 10:00\n"
        "T3,A1,2026-01-02 10:00,\n"
    )
    result = load(_write(tmp_path, tickets=tickets))
    assert result.report.problems == [
        Problem("tickets", 1, "resolved_at", Rule.RESOLVED_BEFORE_CREATED, "2026-01-02 09:59")
    ]
    assert result.dataset.frame("tickets")["ticket_id"].tolist() == ["T2", "T3"]


def test_row_with_several_problems_is_listed_per_problem_and_quarantined_once(tmp_path):
    subs = "account_id,start_date,end_date,mrr\nA1,2026-01-01,,1\nZZ,soon,,-3\n"
    result = load(_write(tmp_path, subscriptions=subs))
    assert result.report.problems == [
        Problem("subscriptions", 2, "account_id", Rule.UNKNOWN_ACCOUNT, "ZZ"),
        Problem("subscriptions", 2, "start_date", Rule.UNPARSEABLE, "soon"),
        Problem("subscriptions", 2, "mrr", Rule.NEGATIVE, "-3"),
    ]
    assert result.report.tables["subscriptions"] == TableReport(rows=2, valid=1, quarantined=1)


def test_rows_equal_valid_plus_quarantined_and_match_the_dataset(tmp_path):
    tickets = (
        "ticket_id,account_id,created_at,contacts\n"
        "T1,A1,2026-01-01,1\nT2,A1,2026-01-01,0\nT3,ZZ,2026-01-01,2\nT4,A2,bad,x\nT5,A2,2026-01-01,\n"
    )
    result = load(_write(tmp_path, tickets=tickets))
    for name, counts in result.report.tables.items():
        assert counts.rows == counts.valid + counts.quarantined
        assert len(result.dataset.frame(name)) == counts.valid
    assert result.report.tables["tickets"] == TableReport(rows=5, valid=2, quarantined=3)


def test_to_dict_is_json_serialisable(tmp_path):
    result = load(_write(tmp_path, accounts="account_id,created_at\nA1,2026-01-01\n,x\n"))
    data = json.loads(json.dumps(result.report.to_dict()))
    assert [p for p in data["problems"] if p["table"] == "accounts"] == [
        {
            "table": "accounts",
            "row": 2,
            "column": "account_id",
            "rule": "missing_value",
            "value": None,
        },
        {
            "table": "accounts",
            "row": 2,
            "column": "created_at",
            "rule": "unparseable",
            "value": "x",
        },
    ]
    assert data["tables"]["accounts"] == {"rows": 2, "valid": 1, "quarantined": 1}


# ------------------------------------------------------------------ quarantine


def test_quarantine_file_holds_original_values_row_and_problems(tmp_path):
    subs = (
        "account_id,start_date,end_date,mrr,note\n"
        "A1,2026-01-01,,1,fine\n"
        'ZZ,2026-01-01,,-3,"a, b"\n'
        "A2,01/02/2026,,1e1,\n"
    )
    result = load(_write(tmp_path / "src", subscriptions=subs), quarantine_dir=tmp_path / "q" / "x")
    assert result.report.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "q" / "x").iterdir()) == ["subscriptions.csv"]
    text = (tmp_path / "q" / "x" / "subscriptions.csv").read_text()
    assert text.splitlines() == [
        "account_id,start_date,end_date,mrr,note,_row,_problems",
        'ZZ,2026-01-01,,-3,"a, b",2,account_id:unknown_account;mrr:negative',
        "A2,01/02/2026,,1e1,,3,start_date:unparseable",
    ]


def test_a_clean_rerun_removes_the_stale_quarantine_file(tmp_path):
    subs = "account_id,start_date,end_date,mrr\nA1,2026-01-01,,-1\nA2,2026-01-01,,1\n"
    folder = _write(tmp_path / "src", subscriptions=subs)
    load(folder, quarantine_dir=tmp_path / "q")
    assert (tmp_path / "q" / "subscriptions.csv").exists()
    (folder / "subscriptions.csv").write_text(
        "account_id,start_date,end_date,mrr\nA1,2026-01-01,,1\n"
    )
    assert load(folder, quarantine_dir=tmp_path / "q").report.exit_code == 0
    assert list((tmp_path / "q").iterdir()) == []


# ------------------------------------------------------------------ malformed lines

ORDERS = "account_id,ordered_at,amount\n"
MALFORMED = Rule.MALFORMED_LINE


def _malformed_file(folder: Path, table: str) -> list[str]:
    return (folder / f"{table}.malformed.csv").read_text().splitlines()


def test_line_with_too_many_fields_is_quarantined_and_later_rows_keep_their_number(tmp_path):
    text = ORDERS + "A1,2026-01-01,1\nA1,2026-01-01,1,5\nA2,2026-01-02,-4\nA2,2026-01-03,2\n"
    result = load(_write(tmp_path / "src", orders=text), quarantine_dir=tmp_path / "q")
    assert result.report.problems == [
        Problem("orders", 2, "", MALFORMED, "A1,2026-01-01,1,5"),
        Problem("orders", 3, "amount", Rule.NEGATIVE, "-4"),
    ]
    assert result.report.tables["orders"] == TableReport(rows=4, valid=2, quarantined=2)
    assert result.report.exit_code == 1
    assert result.report.warnings == []
    assert result.dataset.frame("orders")["amount"].tolist() == [1.0, 2.0]
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == [
        "orders.csv",
        "orders.malformed.csv",
    ]
    assert (tmp_path / "q" / "orders.csv").read_text().splitlines() == [
        "account_id,ordered_at,amount,_row,_problems",
        "A2,2026-01-02,-4,3,amount:negative",
    ]
    assert _malformed_file(tmp_path / "q", "orders") == [
        "_row,_line,_error,_text",
        '2,3,Expected Number of Columns: 3 Found: 4,"A1,2026-01-01,1,5"',
    ]


def test_line_with_too_few_fields_is_quarantined(tmp_path):
    text = ORDERS + "A1,2026-01-01,1\nA1,2026-01-01\nZZ,2026-01-02,1\n"
    result = load(_write(tmp_path / "src", orders=text), quarantine_dir=tmp_path / "q")
    assert result.report.problems == [
        Problem("orders", 2, "", MALFORMED, "A1,2026-01-01"),
        Problem("orders", 3, "account_id", Rule.UNKNOWN_ACCOUNT, "ZZ"),
    ]
    assert result.report.tables["orders"] == TableReport(rows=3, valid=1, quarantined=2)
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == [
        "orders.csv",
        "orders.malformed.csv",
    ]
    assert _malformed_file(tmp_path / "q", "orders") == [
        "_row,_line,_error,_text",
        '2,3,Expected Number of Columns: 3 Found: 2,"A1,2026-01-01"',
    ]


def test_a_whitespace_only_line_is_one_malformed_line(tmp_path):
    # DuckDB reports such a line once per missing column; it is one problem
    text = ORDERS + "A1,2026-01-01,1\n   \nA1,2026-01-01,2\n"
    result = load(_write(tmp_path, orders=text))
    assert result.report.problems == [Problem("orders", 2, "", MALFORMED, "   ")]
    assert result.report.tables["orders"] == TableReport(rows=3, valid=2, quarantined=1)


def test_unterminated_quote_at_the_end_of_the_file(tmp_path):
    text = ORDERS + 'A1,2026-01-01,1\nA2,2026-01-02,"2\n'
    result = load(_write(tmp_path / "src", orders=text), quarantine_dir=tmp_path / "q")
    assert result.report.problems == [Problem("orders", 2, "", MALFORMED, 'A2,2026-01-02,"2')]
    assert result.report.tables["orders"] == TableReport(rows=2, valid=1, quarantined=1)
    assert _malformed_file(tmp_path / "q", "orders") == [
        "_row,_line,_error,_text",
        '2,3,Value with unterminated quote found.,"A2,2026-01-02,""2"',
    ]
    assert not (tmp_path / "q" / "orders.csv").exists()


def test_text_after_a_closing_quote_is_a_malformed_line(tmp_path):
    text = ORDERS + 'A1,2026-01-01,"1"0\nA1,2026-01-01,1\n'
    result = load(_write(tmp_path, orders=text))
    assert result.report.problems == [Problem("orders", 1, "", MALFORMED, 'A1,2026-01-01,"1"0')]
    assert result.report.tables["orders"] == TableReport(rows=2, valid=1, quarantined=1)


def test_row_numbers_stay_true_around_quoted_line_breaks_and_blank_lines(tmp_path):
    text = (
        ORDERS
        + 'A1,2026-01-01,"1\n0"\n'  # row 1, lines 2-3: a value with a line break
        + "\n"  # line 4: blank, not a row
        + "A1,2026-01-01,5,5\n"  # row 2, line 5: malformed
        + '"A\n2",2026-01-02,1\n'  # row 3, lines 6-7: unknown account
        + "A2,2026-01-02,x,y\n"  # row 4, line 8: malformed
        + "A2,2026-01-03,-1\n"  # row 5, line 9: negative
        + "A2,2026-01-03,3\n"  # row 6, line 10: valid
    )
    result = load(_write(tmp_path / "src", orders=text), quarantine_dir=tmp_path / "q")
    assert result.report.problems == [
        Problem("orders", 1, "amount", Rule.UNPARSEABLE, "1\n0"),
        Problem("orders", 2, "", MALFORMED, "A1,2026-01-01,5,5"),
        Problem("orders", 3, "account_id", Rule.UNKNOWN_ACCOUNT, "A\n2"),
        Problem("orders", 4, "", MALFORMED, "A2,2026-01-02,x,y"),
        Problem("orders", 5, "amount", Rule.NEGATIVE, "-1"),
    ]
    assert result.report.tables["orders"] == TableReport(rows=6, valid=1, quarantined=5)
    assert _malformed_file(tmp_path / "q", "orders") == [
        "_row,_line,_error,_text",
        '2,5,Expected Number of Columns: 3 Found: 4,"A1,2026-01-01,5,5"',
        '4,8,Expected Number of Columns: 3 Found: 4,"A2,2026-01-02,x,y"',
    ]
    quarantined = pd.read_csv(tmp_path / "q" / "orders.csv")
    assert quarantined["_row"].tolist() == [1, 3, 5]


def test_row_numbers_with_crlf_line_ends(tmp_path):
    text = (ORDERS + "A1,2026-01-01,1\n\nA1,2026-01-01,1,5\nZZ,2026-01-02,1\n").replace(
        "\n", "\r\n"
    )
    result = load(_write(tmp_path / "src", orders=text), quarantine_dir=tmp_path / "q")
    assert result.report.problems == [
        Problem("orders", 2, "", MALFORMED, "A1,2026-01-01,1,5"),
        Problem("orders", 3, "account_id", Rule.UNKNOWN_ACCOUNT, "ZZ"),
    ]
    assert _malformed_file(tmp_path / "q", "orders")[1:] == [
        '2,4,Expected Number of Columns: 3 Found: 4,"A1,2026-01-01,1,5"'
    ]


def test_a_long_malformed_line_is_cut_in_the_report_not_in_the_quarantine_file(tmp_path):
    line = "A1,2026-01-01,1," + "x" * 600
    result = load(
        _write(tmp_path / "src", orders=ORDERS + line + "\n"), quarantine_dir=tmp_path / "q"
    )
    assert result.report.problems == [Problem("orders", 1, "", MALFORMED, line[:500])]
    written = pd.read_csv(tmp_path / "q" / "orders.malformed.csv")
    assert written["_text"].tolist() == [line]


def test_every_line_of_a_required_table_malformed_makes_the_source_unusable(tmp_path):
    subs = "account_id,start_date,end_date,mrr\nA1,2026-01-01,,1,1\nA2,2026-01-01\n"
    src = _write(tmp_path / "src", subscriptions=subs)
    with pytest.raises(UnusableDataError, match=r"^required table 'subscriptions' has no valid"):
        load(src, quarantine_dir=tmp_path / "q")
    report = load_report(src, tmp_path / "q")
    assert report.problems == [
        Problem("subscriptions", 1, "", MALFORMED, "A1,2026-01-01,,1,1"),
        Problem("subscriptions", 2, "", MALFORMED, "A2,2026-01-01"),
    ]
    assert report.tables["subscriptions"] == TableReport(rows=2, valid=0, quarantined=2)
    assert report.exit_code == 2
    assert report.warnings == [
        f"{src / 'subscriptions.csv'}: every data line (2) is malformed and quarantined "
        "(rule malformed_line); required table 'subscriptions' has no valid rows"
    ]
    assert _malformed_file(tmp_path / "q", "subscriptions") == [
        "_row,_line,_error,_text",
        '1,2,Expected Number of Columns: 4 Found: 5,"A1,2026-01-01,,1,1"',
        '2,3,Expected Number of Columns: 4 Found: 2,"A2,2026-01-01"',
    ]


def test_numbering_falls_back_with_a_warning_when_python_cannot_retrace_the_file(tmp_path):
    # a quoted value over the csv module's field size limit (131,072 characters)
    big = 'A1,2026-01-01,"' + "9" * 200_000 + '"\n'
    src = _write(tmp_path, orders=ORDERS + big + "A1,2026-01-01,1,5\nA1,2026-01-02,-1\n")
    result = load(src)
    assert [(p.row, p.rule) for p in result.report.problems] == [
        (1, Rule.UNPARSEABLE),  # the 200,000 nines are no finite number
        (2, MALFORMED),
        (3, Rule.NEGATIVE),
    ]
    assert result.report.warnings == [
        f"{src / 'orders.csv'}: Python's csv reader could not retrace the file, so the row "
        "and line numbers from the first malformed line on leave out the blank lines and "
        "quoted line breaks before it"
    ]


def test_a_header_name_over_the_csv_field_limit_is_a_clear_error(tmp_path):
    src = _write(tmp_path, orders='"' + "x" * 200_000 + '",ordered_at,amount\nA1,2026-01-01,1\n')
    with pytest.raises(DataError, match=r"orders.csv has no usable header \(field larger"):
        load(src)


def test_a_clean_rerun_removes_the_stale_malformed_file(tmp_path):
    folder = _write(tmp_path / "src", orders=ORDERS + "A1,2026-01-01,1,5\n")
    load(folder, quarantine_dir=tmp_path / "q")
    assert (tmp_path / "q" / "orders.malformed.csv").exists()
    (folder / "orders.csv").write_text(ORDERS + "A1,2026-01-01,1\n")
    assert load(folder, quarantine_dir=tmp_path / "q").report.exit_code == 0
    assert list((tmp_path / "q").iterdir()) == []


def test_no_reader_tables_are_left_in_the_dataset(tmp_path):
    result = load(_write(tmp_path, orders=ORDERS + "A1,2026-01-01,1,5\nZZ,2026-01-01,1\n"))
    tables = result.dataset.con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert sorted(t for (t,) in tables) == sorted(
        ["accounts", "subscriptions", "events", "tickets", "nps", "orders", "costs", "activities"]
    )


def test_cli_validate_lists_a_malformed_line(tmp_path, capsys):
    src = _write(tmp_path / "src", orders=ORDERS + "A1,2026-01-01,1\nA1,2026-01-01,1,5\n")
    report = tmp_path / "report.json"
    assert invoke(["validate", src, "--report", report]) == 1
    out = capsys.readouterr().out
    assert (
        "  orders: 1 row (50.0% of the rows): lines that do not split into the header's"
        " columns, e.g. 'A1,2026-01-01,1,5' (row 2); fix: quote values that hold a comma, a"
        ' quote or a line break ("like, this")'
    ) in out.splitlines()
    assert "1 bad row(s) set aside" in out
    assert json.loads(report.read_text())["problems"] == [
        {
            "table": "orders",
            "row": 2,
            "column": "",
            "rule": "malformed_line",
            "value": "A1,2026-01-01,1,5",
        }
    ]


def test_csv_unsplittable_line_finds_only_what_a_field_count_cannot(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS + 'A1,2026-01-01,"1\n0"\nA1,2026-01-01,1,5\nA1,2026-01-01,"2"x\n')
    assert csv_unsplittable_line(path) == (
        5,
        "Value with unterminated quote found.",
        'A1,2026-01-01,"2"x',
    )
    path.write_text(ORDERS + "A1,2026-01-01,1,5\nA1\n")
    assert csv_unsplittable_line(path) is None


_KINDS = ("valid", "negative", "too_many", "too_few", "blank", "line_break")


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    kinds=st.lists(st.sampled_from(_KINDS), min_size=1, max_size=25),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_row_and_line_numbers_are_true_for_any_mix_of_lines(tmp_path_factory, kinds, newline):
    lines, expected, malformed_lines = ["account_id,ordered_at,amount"], [], []
    row, line = 0, 1
    for i, kind in enumerate(kinds):
        line += 1
        if kind == "blank":
            lines.append("")
            continue
        row += 1
        if kind == "valid":
            lines.append(f"A1,2026-01-01,{i}")
        elif kind == "negative":
            lines.append(f"A1,2026-01-01,-{i + 1}")
            expected.append(Problem("orders", row, "amount", Rule.NEGATIVE, f"-{i + 1}"))
        elif kind == "line_break":
            lines.append(f'"A{newline}1",2026-01-01,{i}')
            value = f"A{newline}1"
            expected.append(Problem("orders", row, "account_id", Rule.UNKNOWN_ACCOUNT, value))
            line += 1
        else:
            text = f"A1,2026-01-01,{i},x" if kind == "too_many" else f"A1,{i}"
            lines.append(text)
            expected.append(Problem("orders", row, "", MALFORMED, text))
            malformed_lines.append((row, line))
    assume(row > 0)  # only blank lines: a header without data rows is an error
    folder = tmp_path_factory.mktemp("mix")
    _write(folder)
    (folder / "orders.csv").write_bytes((newline.join(lines) + newline).encode())
    result = load(folder, quarantine_dir=folder / "q")
    assert result.report.problems == expected
    assert result.report.tables["orders"] == TableReport(
        rows=row, valid=row - len(expected), quarantined=len(expected)
    )
    if malformed_lines:
        written = pd.read_csv(folder / "q" / "orders.malformed.csv")
        assert list(zip(written["_row"], written["_line"], strict=True)) == malformed_lines


def test_row_numbers_after_malformed_lines_on_a_large_csv(tmp_path):
    n = 150_000
    src = _write(tmp_path / "src")
    lines = ["account_id,user_id,timestamp,value"]
    lines += [f"A{1 + i % 2},u{i},2026-01-01 00:00:00,{i}" for i in range(n)]
    lines[10] = "A1,u9,2026-01-01 00:00:00,9,9"  # data row 10: too many fields
    lines[20] = ""  # a blank line: past it, lines[k] is data row k - 1, on line k + 1
    lines[n - 100] = "A1,u-short"  # data row n - 101, line n - 99
    lines[n - 10] = "A1,u-bad,2026-01-01 00:00:00,oops"  # data row n - 11
    (src / "events.csv").write_text("\n".join(lines) + "\n")
    result = load(src, quarantine_dir=tmp_path / "q")
    assert result.report.problems == [
        Problem("events", 10, "", MALFORMED, "A1,u9,2026-01-01 00:00:00,9,9"),
        Problem("events", n - 101, "", MALFORMED, "A1,u-short"),
        Problem("events", n - 11, "value", Rule.UNPARSEABLE, "oops"),
    ]
    assert result.report.tables["events"] == TableReport(rows=n - 1, valid=n - 4, quarantined=3)
    assert _malformed_file(tmp_path / "q", "events")[1:] == [
        '10,11,Expected Number of Columns: 4 Found: 5,"A1,u9,2026-01-01 00:00:00,9,9"',
        f'{n - 101},{n - 99},Expected Number of Columns: 4 Found: 2,"A1,u-short"',
    ]


# ------------------------------------------------------------------ time zones


def test_mixed_time_zones_are_normalised_to_utc(tmp_path):
    events = (
        "account_id,user_id,timestamp\n"
        "A1,u1,2026-01-05 10:00:00\n"
        "A1,u1,2026-01-05T10:00:00Z\n"
        "A1,u1,2026-01-05 10:00:00+02:00\n"
        "A1,u1,2026-01-05T10:00:00.250-05:30\n"
        "A1,u1,2026-01-05\n"
    )
    result = load(_write(tmp_path, events=events))
    assert result.report.problems == []
    assert result.dataset.con.execute("SELECT timestamp FROM events").fetchall() == [
        (dt.datetime(2026, 1, 5, 10, 0),),
        (dt.datetime(2026, 1, 5, 10, 0),),
        (dt.datetime(2026, 1, 5, 8, 0),),
        (dt.datetime(2026, 1, 5, 15, 30, 0, 250000),),
        (dt.datetime(2026, 1, 5, 0, 0),),
    ]


# ------------------------------------------------------------------ unusable input


def test_missing_source(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; pass a folder of CSV/parquet files"):
        load(tmp_path / "nowhere")


def test_source_of_unknown_kind(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match=r"neither a folder nor a DuckDB file"):
        load(path)


def test_file_that_is_not_a_duckdb_database(tmp_path):
    path = tmp_path / "data.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 100)
    with pytest.raises(DataError, match=r"cannot be opened as a DuckDB database"):
        load(path)


def test_required_table_missing(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "accounts.csv").write_text(ACCOUNTS)
    with pytest.raises(
        DataError,
        match=r"required table 'subscriptions' is missing: no subscriptions.csv or "
        r"subscriptions.parquet in .*src \(found: accounts.csv\); add it",
    ):
        load(src)


def test_required_column_missing(tmp_path):
    src = _write(tmp_path, subscriptions="account_id,start_date,end_date\nA1,2026-01-01,\n")
    with pytest.raises(
        DataError,
        match=r"table 'subscriptions' \(.*subscriptions.csv\) lacks required column\(s\) mrr; "
        r"columns found: account_id, start_date, end_date",
    ):
        load(src)


def test_empty_required_file(tmp_path):
    src = _write(tmp_path, accounts="")
    with pytest.raises(DataError, match=r"accounts.csv is empty \(0 bytes\); required table"):
        load(src)


def test_header_only_required_file(tmp_path):
    src = _write(tmp_path, subscriptions="account_id,start_date,end_date,mrr\n")
    with pytest.raises(DataError, match=r"subscriptions.csv has a header but no data rows"):
        load(src)


def test_empty_optional_files_are_provided_with_zero_rows(tmp_path):
    src = _write(tmp_path, events="", nps="account_id,responded_at,score\n")
    result = load(src)
    assert result.report.tables["events"] == TableReport(rows=0, valid=0, quarantined=0)
    assert result.report.tables["nps"] == TableReport(rows=0, valid=0, quarantined=0)
    assert result.report.absent == ["tickets", "orders", "costs", "activities"]
    assert result.report.warnings == [
        f"{src / 'events.csv'} is empty (0 bytes); optional table 'events' is treated as "
        "having no rows",
        f"{src / 'nps.csv'} has a header but no data rows; optional table 'nps' is treated "
        "as having no rows",
    ]
    assert result.dataset.has("events")
    assert result.dataset.frame("nps").empty


@pytest.mark.parametrize(("delimiter", "name"), [(";", "';'"), ("\t", "tab"), ("|", "'|'")])
def test_wrong_delimiter(tmp_path, delimiter, name):
    text = f"account_id{delimiter}created_at\nA1{delimiter}2026-01-01\n"
    with pytest.raises(
        DataError,
        match=rf"accounts.csv looks {name}-delimited; churnrisk reads comma-separated files",
    ):
        load(_write(tmp_path, accounts=text))


def test_non_utf8_file(tmp_path):
    src = _write(tmp_path)
    (src / "accounts.csv").write_bytes(
        b"account_id,created_at\nA1,2026-01-01\nCaf\xe9,2026-01-01\n"
    )
    with pytest.raises(
        DataError,
        match=r"accounts.csv is not UTF-8: byte 0xe9 at byte offset 39 \(line 3\) cannot be "
        r"decoded; re-save the file as UTF-8",
    ):
        load(src)


def test_non_utf8_byte_far_into_a_file(tmp_path):
    src = _write(tmp_path)
    body = "".join(f"A{i},2026-01-01\n" for i in range(200_000)).encode()
    (src / "accounts.csv").write_bytes(b"account_id,created_at\n" + body + b"\xff,2026-01-01\n")
    offset = len(b"account_id,created_at\n") + len(body)
    with pytest.raises(DataError, match=rf"byte 0xff at byte offset {offset} \(line 200002\)"):
        load(src)


def test_table_both_as_csv_and_parquet(tmp_path):
    src = _write(tmp_path)
    pq.write_table(pa.table({"account_id": ["A1"]}), src / "accounts.parquet")
    with pytest.raises(
        DataError, match=r"table 'accounts' is given twice .*accounts.csv and accounts.parquet"
    ):
        load(src)


# ------------------------------------------------------------------ parquet and DuckDB


def test_parquet_source_converts_time_zones_and_numbers_rows(tmp_path):
    src = _write(tmp_path)
    stamps = pd.to_datetime(
        ["2026-01-05 12:00", "2026-01-05 12:00", "2026-01-06 00:30", None]
    ).tz_localize("Europe/Paris")
    events = pa.table(
        {
            "account_id": ["A1", "A2", "ZZ", "A1"],
            "user_id": ["u1", "u2", "u3", "u4"],
            "timestamp": pa.array(stamps),
            "value": [1.0, float("nan"), 2.0, 3.0],
        }
    )
    pq.write_table(events, src / "events.parquet", row_group_size=2)
    nps = pa.table(
        {
            "account_id": ["A1", "A1"],
            "responded_at": pa.array([dt.datetime(2026, 1, 1, 9), dt.datetime(2026, 1, 2, 9)]),
            "score": pa.array([9.0, 9.5]),
        }
    )
    pq.write_table(nps, src / "nps.parquet")
    result = load(src)
    assert result.report.problems == [
        Problem("events", 2, "value", Rule.UNPARSEABLE, "nan"),
        Problem("events", 3, "account_id", Rule.UNKNOWN_ACCOUNT, "ZZ"),
        Problem("events", 4, "timestamp", Rule.MISSING_VALUE, None),
        Problem("nps", 2, "score", Rule.NOT_INTEGER, "9.5"),
    ]
    assert result.report.tables["events"] == TableReport(rows=4, valid=1, quarantined=3)
    con = result.dataset.con
    assert con.execute("SELECT account_id, timestamp, value FROM events").fetchall() == [
        ("A1", dt.datetime(2026, 1, 5, 11, 0), 1.0)
    ]
    assert con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_name = 'events'"
    ).fetchall() == [("VIEW",)]
    assert con.execute("SELECT responded_at, score FROM nps").fetchall() == [
        (dt.datetime(2026, 1, 1, 9), 9)
    ]


def test_duckdb_source(tmp_path):
    path = tmp_path / "source.duckdb"
    with duckdb.connect(str(path)) as src:
        src.execute(
            "CREATE TABLE accounts AS SELECT * FROM (VALUES ('A1', TIMESTAMPTZ "
            "'2026-01-01 10:00:00+02'), ('A2', NULL)) t(account_id, created_at)"
        )
        src.execute(
            "CREATE TABLE subscriptions AS SELECT 'A1' AS account_id, DATE '2026-01-01' "
            "AS start_date, NULL::DATE AS end_date, 10 AS mrr"
        )
        src.execute(
            "CREATE TABLE events AS SELECT 'A1' AS account_id, 'u' || i AS user_id, "
            "TIMESTAMP '2026-01-01' + INTERVAL (i) HOUR AS timestamp FROM range(5) t(i)"
        )
        src.execute("INSERT INTO events VALUES ('A2', 'u9', TIMESTAMP '2026-01-01')")
        src.execute("CREATE TABLE notes AS SELECT 1 AS x")
    result = load(path)
    assert result.report.problems == [
        Problem("accounts", 2, "created_at", Rule.MISSING_VALUE, None),
        Problem("events", 6, "account_id", Rule.UNKNOWN_ACCOUNT, "A2"),
    ]
    assert result.report.absent == ["tickets", "nps", "orders", "costs", "activities"]
    assert result.report.warnings == [
        f"{path}: table(s) notes are not contract tables and were ignored"
    ]
    con = result.dataset.con
    assert con.execute("SELECT created_at FROM accounts").fetchall() == [
        (dt.datetime(2026, 1, 1, 8, 0),)
    ]
    assert con.execute("SELECT count(*) FROM events").fetchall() == [(5,)]


def test_duckdb_source_missing_required_table(tmp_path):
    path = tmp_path / "source.db"
    with duckdb.connect(str(path)) as src:
        src.execute("CREATE TABLE accounts AS SELECT 'A1' AS account_id, NOW() AS created_at")
    with pytest.raises(
        DataError,
        match=r"required table 'subscriptions' is missing from .*"
        r"source.db \(tables found: accounts\); add it",
    ):
        load(path)


# ------------------------------------------------------------------ row numbers at scale


def test_row_numbers_on_a_large_csv(tmp_path):
    n = 150_000
    src = _write(tmp_path)
    lines = ["account_id,user_id,timestamp,value"]
    lines += [f"A{1 + i % 2},u{i},2026-01-01 00:00:00,{i}" for i in range(n)]
    lines[n - 10] = "A1,u-bad,2026-01-01 00:00:00,oops"  # data row n - 10
    (src / "events.csv").write_text("\n".join(lines) + "\n")
    assert (src / "events.csv").stat().st_size > 4_000_000
    result = load(src)
    assert result.report.problems == [Problem("events", n - 10, "value", Rule.UNPARSEABLE, "oops")]
    assert result.report.tables["events"] == TableReport(rows=n, valid=n - 1, quarantined=1)


# ------------------------------------------------------------------ what the dates mean


def test_a_cancellation_dated_export_is_named_in_one_line(tmp_path):
    # end_date only on the row that stopped: read as a stop, renewal timing is off
    subs = "account_id,start_date,end_date,mrr\nA1,2025-01-01,,100\nA2,2025-01-01,2025-06-01,50\n"
    report = load(_write(tmp_path, subscriptions=subs)).report
    assert report.warnings == [
        "subscriptions.end_date is set only on the 1 of 2 rows that stopped, as in a"
        " cancellation-dated export: it is read as the day each row stopped, and renewal"
        " timing is off: add term_end (the renewal date known at signing) to turn it on"
    ]


def test_end_dates_after_the_data_are_named_as_term_ends(tmp_path):
    # the last day observed is 2026-01-02 (an account's creation): 2027 is a term end
    subs = "account_id,start_date,end_date,mrr\nA1,2026-01-01,2027-01-01,100\nA2,2026-01-01,,5\n"
    report = load(_write(tmp_path, subscriptions=subs)).report
    assert report.warnings == [
        "subscriptions.end_date: 1 of 2 rows stop after the last day observed (2026-01-02),"
        " so they are term ends known at signing, not stops; they are read only as stops"
        " and renewal timing is off: give them as term_end too"
    ]


def test_no_note_when_term_end_is_given(tmp_path):
    subs = (
        "account_id,start_date,end_date,mrr,term_end\n"
        "A1,2026-01-01,,100,2027-01-01\nA2,2026-01-01,2026-03-01,50,2026-03-01\n"
    )
    assert load(_write(tmp_path, subscriptions=subs)).report.warnings == []


def test_term_end_must_come_after_the_start(tmp_path):
    subs = (
        "account_id,start_date,end_date,mrr,term_end\n"
        "A1,2026-01-01,,100,2027-01-01\nA2,2026-01-01,,50,2026-01-01\n"
    )
    report = load(_write(tmp_path, subscriptions=subs)).report
    assert report.problems == [
        Problem("subscriptions", 2, "term_end", Rule.END_NOT_AFTER_START, "2026-01-01")
    ]
