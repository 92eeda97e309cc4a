"""Causes of set-aside rows: the common shapes of a messy export, named once each."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_invoke import invoke

from churnrisk.causes import Cause, diagnose, read_money
from churnrisk.contract import Rule
from churnrisk.errors import DataError
from churnrisk.validate import Problem, UnusableDataError, load

ACCOUNTS = "account_id,created_at\nA1,2026-01-01\nA2,2026-01-02\nA3,2026-01-03\n"


def _folder(tmp_path: Path, subscriptions: str, accounts: str = ACCOUNTS) -> Path:
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    (folder / "accounts.csv").write_text(accounts, encoding="utf-8")
    (folder / "subscriptions.csv").write_text(subscriptions, encoding="utf-8")
    return folder


def _unparseable(column: str, *values: str, table: str = "subscriptions") -> list[Problem]:
    return [Problem(table, k + 1, column, Rule.UNPARSEABLE, v) for k, v in enumerate(values)]


def _seen(column: str, *values: str) -> tuple[str, str]:
    (cause,) = diagnose("subscriptions", _unparseable(column, *values), table_rows=10)
    return cause.seen, cause.fix


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("values", "seen"),
    [
        (("2,884.05", "1,200.00"), "amounts with thousands separators"),
        (("12,50", "3,99"), "numbers with a decimal comma"),
        (("1.234,56",), "numbers with a decimal comma"),
        (("1,234",), "amounts with thousands separators"),
        (("1,234", "2,5"), "numbers with a decimal comma"),
        (("$1,200.00", "€ 30", "12 USD"), "amounts with a currency sign"),
        (("12.5%",), "percentages with a % sign"),
        (("(12.50)",), "accounting negatives in parentheses"),
        (("1 200,50", "12'000"), "amounts with spaces or apostrophes between the thousands"),
        (("N/A", "null", "-"), "placeholders instead of values"),
        (("ten",), "values the column's type cannot read"),
    ],
)
def test_number_shapes(values: tuple[str, ...], seen: str) -> None:
    assert _seen("mrr", *values)[0] == seen


@pytest.mark.parametrize(
    ("values", "seen"),
    [
        (("03/15/2025", "04/01/2025"), "dates written MM/DD/YYYY"),
        (("15/03/2025", "01/04/2025"), "dates written DD/MM/YYYY"),
        (("03/04/2025",), "dates written MM/DD/YYYY or DD/MM/YYYY (which one cannot be told)"),
        (("15.03.2025",), "dates written DD.MM.YYYY"),
        (("2025/03/15",), "dates written YYYY/MM/DD"),
        (("Mar 15, 2025", "15 March 2025"), "dates with month names"),
        (("45731",), "spreadsheet serial day numbers"),
        (("2025-03-15 10:30:00",), "dates with a time of day"),
        (("soon",), "values the column's type cannot read"),
    ],
)
def test_date_shapes(values: tuple[str, ...], seen: str) -> None:
    assert _seen("start_date", *values)[0] == seen


def test_a_timestamp_column_knows_unix_time_and_has_no_time_of_day_cause() -> None:
    problems = _unparseable("created_at", "1760000000", "1760000000123", table="accounts")
    (cause,) = diagnose("accounts", problems, table_rows=2)
    assert cause.seen == "Unix timestamps (seconds or milliseconds since 1970)"
    # a time of day is fine in a timestamp: a bad one is just unreadable
    (cause,) = diagnose(
        "accounts", _unparseable("created_at", "2025-13-45 10:30", table="accounts"), table_rows=1
    )
    assert cause.seen == "values the column's type cannot read"


def test_one_cause_per_column_and_shape_largest_first() -> None:
    problems = [
        Problem("subscriptions", 1, "mrr", Rule.UNPARSEABLE, "2,884.05"),
        Problem("subscriptions", 2, "start_date", Rule.UNPARSEABLE, "03/15/2025"),
        Problem("subscriptions", 2, "mrr", Rule.UNPARSEABLE, "1,000.00"),
        Problem("subscriptions", 3, "mrr", Rule.UNPARSEABLE, "$5"),
        Problem("subscriptions", 4, "mrr", Rule.NEGATIVE, "-5"),
        Problem("subscriptions", 5, "mrr", Rule.UNPARSEABLE, "1,000.00"),
    ]
    causes = diagnose("subscriptions", problems, table_rows=20)
    assert [(c.column, c.rule, c.rows, c.first_rows, c.examples) for c in causes] == [
        ("mrr", Rule.UNPARSEABLE, 3, (1, 2, 5), ("2,884.05", "1,000.00")),
        ("start_date", Rule.UNPARSEABLE, 1, (2,), ("03/15/2025",)),
        ("mrr", Rule.NEGATIVE, 1, (4,), ("-5",)),
        ("mrr", Rule.UNPARSEABLE, 1, (3,), ("$5",)),
    ]


def test_the_line_of_a_cause_reads_whole() -> None:
    """280 of 3,300 rows with thousands separators carry 53% of the MRR (the issue's case).

    By hand: one row of 2,884.05 and 279 of 2,000.00 are set aside, 560,884.05 in all; the
    valid rows hold 495,719.72, so the table's MRR is 1,056,603.77 and the share
    560,884.05 / 1,056,603.77 = 0.53084 -> 53.1%; 280 / 3,300 = 8.48% -> 8.5%.
    """
    rows = [k * 11 + 1 for k in range(280)]
    problems = [Problem("subscriptions", r, "mrr", Rule.UNPARSEABLE, "2,000.00") for r in rows]
    problems[0] = Problem("subscriptions", 1, "mrr", Rule.UNPARSEABLE, "2,884.05")
    money = dict.fromkeys(rows, "2,000.00")
    money[1] = "2,884.05"
    (cause,) = diagnose(
        "subscriptions", problems, table_rows=3300, money=money, valid_money=495_719.72
    )
    assert cause.money_share == pytest.approx(560_884.05 / 1_056_603.77, abs=1e-12)
    assert cause.text == (
        "subscriptions.mrr: 280 rows (8.5% of the rows, 53.1% of the mrr): amounts with"
        " thousands separators, e.g. '2,884.05', '2,000.00' (rows 1, 12, 23, 34, 45, …);"
        " fix: write amounts without thousands separators (2884.05, not 2,884.05)"
    )
    assert cause.brief == (
        "subscriptions.mrr: amounts with thousands separators (280 rows); fix: write amounts"
        " without thousands separators (2884.05, not 2,884.05)"
    )


def test_money_share_is_left_out_when_an_amount_cannot_be_read() -> None:
    problems = _unparseable("start_date", "03/15/2025", "04/15/2025")
    (cause,) = diagnose(
        "subscriptions", problems, table_rows=4, money={1: "100", 2: "lots"}, valid_money=100.0
    )
    assert cause.money_share is None
    assert "of the mrr" not in cause.text
    (cause,) = diagnose(
        "subscriptions", problems, table_rows=4, money={1: "100", 2: "$300"}, valid_money=100.0
    )
    assert cause.money_share == 0.8  # 400 of 100 + 400


def test_repeated_header_and_rows_of_set_aside_accounts() -> None:
    header = [
        Problem("subscriptions", 7, "account_id", Rule.UNKNOWN_ACCOUNT, "account_id"),
        Problem("subscriptions", 7, "start_date", Rule.UNPARSEABLE, "start_date"),
        Problem("subscriptions", 7, "mrr", Rule.UNPARSEABLE, "mrr"),
    ]
    orphans = [
        Problem("subscriptions", 2, "account_id", Rule.UNKNOWN_ACCOUNT, "A9"),
        Problem("subscriptions", 3, "account_id", Rule.UNKNOWN_ACCOUNT, "ZZ"),
    ]
    causes = diagnose(
        "subscriptions",
        header + orphans,
        table_rows=9,
        set_aside_accounts=frozenset({"A9"}),
        account_of={2: "A9", 3: "ZZ", 7: "account_id"},
    )
    assert [(c.seen, c.rows, c.first_rows) for c in causes] == [
        ("the header line repeated mid-file", 1, (7,)),
        ("rows of accounts that were set aside themselves", 1, (2,)),
        ("accounts that are not among the valid accounts", 1, (3,)),
    ]
    assert causes[0].where == "subscriptions"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2884.05", 2884.05),
        ("2,884.05", 2884.05),
        ("1.234,56", 1234.56),
        ("12,5", 12.5),
        ("1,234", 1234.0),
        ("$1,200.50", 1200.5),
        ("1 200", 1200.0),
        ("(12.50)", -12.5),
        ("EUR 30", 30.0),
        ("ten", None),
        (None, None),
        ("inf", None),
    ],
)
def test_read_money_reads_an_amount_as_its_writer_meant_it(
    text: str | None, value: float | None
) -> None:
    assert read_money(text) == value


# --------------------------------------------------------------------------- on load


def test_load_names_the_cause_and_sets_the_rows_aside(tmp_path: Path) -> None:
    subs = (
        "account_id,start_date,end_date,mrr\n"
        'A1,2026-01-01,,"2,884.05"\n'
        "A2,2026-01-01,,100\n"
        'A3,2026-01-01,,"1,000.00"\n'
    )
    report = load(_folder(tmp_path, subs)).report
    assert report.exit_code == 1
    (cause,) = report.causes
    assert cause == Cause(
        table="subscriptions",
        column="mrr",
        rule=Rule.UNPARSEABLE,
        seen="amounts with thousands separators",
        fix="write amounts without thousands separators (2884.05, not 2,884.05)",
        rows=2,
        table_rows=3,
        examples=("2,884.05", "1,000.00"),
        first_rows=(1, 3),
        money_share=3884.05 / 3984.05,
        money_column="mrr",
    )
    assert report.to_dict()["causes"] == [cause.to_dict()]


def test_a_required_table_with_no_valid_row_is_unusable(tmp_path: Path) -> None:
    subs = "account_id,start_date,end_date,mrr\nA1,03/15/2025,,10\nA2,03/16/2025,04/16/2025,20\n"
    quarantine = tmp_path / "q"
    with pytest.raises(UnusableDataError, match="subscriptions") as caught:
        load(_folder(tmp_path, subs), quarantine_dir=quarantine)
    assert str(caught.value) == (
        "required table 'subscriptions' has no valid row left: all 2 rows were set aside;"
        " the main cause: subscriptions.start_date: dates written MM/DD/YYYY (2 rows); fix:"
        " write dates as YYYY-MM-DD (ISO 8601), the one form read the same everywhere; fix"
        " the export and load it again (`churnrisk validate` lists every cause)"
    )
    assert isinstance(caught.value, DataError)
    assert caught.value.report.exit_code == 2
    assert (quarantine / "subscriptions.csv").exists()  # the rows are still quarantined


def test_rows_of_set_aside_accounts_say_so(tmp_path: Path) -> None:
    accounts = "account_id,created_at\nA1,2026-01-01\nA2,01/02/2026\n"
    subs = "account_id,start_date,end_date,mrr\nA1,2026-01-01,,10\nA2,2026-01-01,,20\n"
    report = load(_folder(tmp_path, subs, accounts)).report
    assert [c.brief for c in report.causes] == [
        "accounts.created_at: dates written MM/DD/YYYY or DD/MM/YYYY (which one cannot be"
        " told) (1 row); fix: write dates as YYYY-MM-DD (ISO 8601), the one form read the"
        " same everywhere",
        "subscriptions.account_id: rows of accounts that were set aside themselves (1 row);"
        " fix: correct those accounts' rows in the accounts table first",
    ]
    assert report.causes[1].money_share == pytest.approx(20 / 30)


def test_a_column_named_in_another_case_is_named_in_the_error(tmp_path: Path) -> None:
    subs = "Account_ID,start_date,end_date,mrr\nA1,2026-01-01,,10\n"
    with pytest.raises(DataError, match=r"rename 'Account_ID' to 'account_id'$"):
        load(_folder(tmp_path, subs))


def test_an_optional_column_in_another_case_is_not_read_and_the_warning_says_how(
    tmp_path: Path,
) -> None:
    accounts = "account_id,created_at,Segment\nA1,2026-01-01,SMB\n"
    subs = "account_id,start_date,end_date,mrr\nA1,2026-01-01,,10\n"
    result = load(_folder(tmp_path, subs, accounts))
    assert result.dataset.frame("accounts")["segment"].isna().all()
    assert result.report.warnings == [
        f"{tmp_path / 'src' / 'accounts.csv'}: column(s) Segment are not in the contract of"
        " 'accounts' and were ignored; to use them, rename 'Segment' to 'segment'"
    ]


# --------------------------------------------------------------------------- the CLI


def test_validate_prints_one_line_per_cause_and_exits_2_when_unusable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    subs = "account_id,start_date,end_date,mrr\nA1,03/15/2025,,10\nA2,03/16/2025,,20\n"
    folder = _folder(tmp_path, subs)
    assert invoke(["validate", folder]) == 2
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "why rows were set aside, one line per cause (--report FILE lists every row):" in lines
    assert (
        "  subscriptions.start_date: 2 rows (100.0% of the rows, 100.0% of the mrr): dates"
        " written MM/DD/YYYY, e.g. '03/15/2025', '03/16/2025' (rows 1, 2); fix: write dates as"
        " YYYY-MM-DD (ISO 8601), the one form read the same everywhere"
    ) in lines
    assert captured.err.startswith("error: required table 'subscriptions' has no valid row")
    assert captured.err.count("\n") == 1

    # every other command stops too, after saying what it set aside and why
    assert invoke(["metrics", folder]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "set aside 2 bad row(s) (subscriptions 2)"
    assert err[1].startswith("  subscriptions.start_date: 2 rows (100.0% of the rows")
    assert err[2] == f"  `churnrisk validate {folder}` lists every cause"
    assert err[-1].startswith("error: required table 'subscriptions' has no valid row left")
