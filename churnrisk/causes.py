"""Why rows were set aside: the validation problems grouped by cause, one line each.

Exports from spreadsheets and billing systems break the contract in a few common ways
at once (every amount written ``2,884.05``, every date ``03/15/2025``). Listing each row
would bury that under hundreds of lines that say the same thing; :func:`diagnose`
recognises the common shapes of a value and reports one :class:`Cause` per table,
column, rule and shape: what was seen, how many rows, what share of the table's rows
and of its money, a few examples, and the fix.

Nothing here converts a value for loading: a row that breaks a rule stays set aside.
The shapes only name what went wrong, and a money value is read leniently (``2,884.05``
as 2884.05) only to say how much of the table's money the set-aside rows carry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from churnrisk.contract import TABLES, Kind, Rule

__all__ = ["Cause", "diagnose", "read_money"]

EXAMPLES = 3
"""Example values (and first rows) a cause shows."""

FIRST_ROWS = 5
"""Row numbers a cause lists."""


@dataclass(frozen=True)
class Cause:
    """One way many rows of a table broke one rule.

    Attributes
    ----------
    table, column, rule
        Where and what (``column`` is ``""`` for a whole CSV line).
    seen
        What the values are, as a noun phrase ("amounts with thousands separators").
    fix
        What to change in the export.
    rows
        Rows with this cause.
    table_rows
        Rows of the table, as read.
    examples
        Up to :data:`EXAMPLES` distinct offending values, in row order.
    first_rows
        The first :data:`FIRST_ROWS` row numbers.
    money_share
        Share (0-1) of the table's money that these rows carry, or None when the table
        has no money column or some of these rows' amounts cannot be read at all.
    money_column
        The table's money column (``mrr``, ``amount``), or None.
    """

    table: str
    column: str
    rule: Rule
    seen: str
    fix: str
    rows: int
    table_rows: int
    examples: tuple[str | None, ...]
    first_rows: tuple[int, ...]
    money_share: float | None = None
    money_column: str | None = None

    @property
    def where(self) -> str:
        """``table.column``, or the table alone for whole lines."""
        return f"{self.table}.{self.column}" if self.column else self.table

    @property
    def brief(self) -> str:
        """The cause in a few words: where, what was seen, how many rows, the fix."""
        noun = "row" if self.rows == 1 else "rows"
        return f"{self.where}: {self.seen} ({self.rows:,} {noun}); fix: {self.fix}"

    @property
    def text(self) -> str:
        """The cause in one line: where, how many, what share, what was seen, the fix."""
        share = f"{_pct(self.rows / self.table_rows)} of the rows" if self.table_rows else ""
        if self.money_share is not None and self.money_column:
            share += f", {_pct(self.money_share)} of the {self.money_column}"
        shown = ", ".join("(empty)" if v is None else repr(v) for v in self.examples)
        rows = ", ".join(f"{r:,}" for r in self.first_rows)
        more = ", …" if self.rows > len(self.first_rows) else ""
        noun = "row" if self.rows == 1 else "rows"
        return (
            f"{self.where}: {self.rows:,} {noun} ({share}): {self.seen}, e.g. {shown}"
            f" (row{'s' if len(self.first_rows) > 1 else ''} {rows}{more}); fix: {self.fix}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the cause as JSON-ready data (``text`` included)."""
        return {
            "table": self.table,
            "column": self.column,
            "rule": str(self.rule),
            "seen": self.seen,
            "fix": self.fix,
            "rows": self.rows,
            "examples": list(self.examples),
            "first_rows": list(self.first_rows),
            "money_share": self.money_share,
            "text": self.text,
        }


def _pct(share: float) -> str:
    """Return a share as a percentage with one decimal; a sliver reads ``<0.1%``."""
    if 0 < share < 0.0005:
        return "<0.1%"
    return f"{share:.1%}"


# --------------------------------------------------------------------------- shapes


@dataclass(frozen=True)
class _Shape:
    """A recognisable way of writing a value that the contract does not read.

    ``refine`` may reword ``seen`` and ``fix`` from all the values of a group (whether
    ``03/04/2025`` means March or April shows only across many rows).
    """

    name: str
    kinds: frozenset[Kind]
    match: Callable[[str], bool]
    seen: str
    fix: str
    refine: Callable[[Sequence[str]], tuple[str, str]] | None = None


def _full(pattern: str, flags: int = 0) -> Callable[[str], bool]:
    compiled = re.compile(pattern, flags)
    return lambda text: compiled.fullmatch(text.strip()) is not None


_NUMBER = frozenset({Kind.FLOAT, Kind.INTEGER})
_DAY = frozenset({Kind.DATE, Kind.TIMESTAMP})
_ANY = frozenset(Kind)
_ISO = "write dates as YYYY-MM-DD (ISO 8601), the one form read the same everywhere"
_PLAIN = "write amounts as plain numbers: digits, a point for decimals, nothing else"
_CURRENCY = r"(?:[$€£¥₹]|USD|EUR|GBP|CHF|JPY|CAD|AUD)"

_SLASH = re.compile(r"\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})(?:[ T].*)?\s*")


def _day_order(values: Sequence[str]) -> tuple[str, str]:
    """Say whether ``a/b/yyyy`` dates are month-first, day-first or cannot be told."""
    firsts, seconds = [], []
    for value in values:
        m = _SLASH.fullmatch(value)
        if m:
            firsts.append(int(m.group(1)))
            seconds.append(int(m.group(2)))
    sep = next((c for v in values for c in "/.-" if c in v.strip()[:6]), "/")
    if any(f > 12 for f in firsts) and not any(s > 12 for s in seconds):
        form = f"DD{sep}MM{sep}YYYY"
    elif any(s > 12 for s in seconds) and not any(f > 12 for f in firsts):
        form = f"MM{sep}DD{sep}YYYY"
    else:
        form = f"MM{sep}DD{sep}YYYY or DD{sep}MM{sep}YYYY (which one cannot be told)"
    return f"dates written {form}", _ISO


def _comma_meaning(values: Sequence[str]) -> tuple[str, str]:
    """Say whether commas in numbers are thousands separators or decimal commas."""
    thousands = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?")
    decimal = re.compile(r"[+-]?\d+,\d{1,2}|[+-]?\d{1,3}(\.\d{3})+,\d+|[+-]?\d+,\d{4,}")
    stripped = [v.strip() for v in values]
    if any(decimal.fullmatch(v) for v in stripped) and not any(
        "." in v and thousands.fullmatch(v) for v in stripped
    ):
        return (
            "numbers with a decimal comma",
            "write decimals with a point (2884.05, not 2884,05) and no thousands separator",
        )
    if all(thousands.fullmatch(v) for v in stripped):
        return (
            "amounts with thousands separators",
            "write amounts without thousands separators (2884.05, not 2,884.05)",
        )
    return (
        "numbers with commas (thousands separators or decimal commas)",
        "write numbers without thousands separators and with a point for decimals",
    )


_SHAPES: tuple[_Shape, ...] = (
    _Shape(
        "placeholder",
        _ANY,
        _full(r"n/?a|#n/?a|null|none|nil|nan|undefined|-+|—|\?+|missing", re.IGNORECASE),
        "placeholders instead of values",
        "leave the cell empty where there is no value (or fill in the value)",
    ),
    _Shape(
        "currency",
        _NUMBER,
        _full(rf"[+-]?\s*{_CURRENCY}\s*[+-]?[\d.,' ]+|[+-]?[\d.,' ]+\s*{_CURRENCY}", re.IGNORECASE),
        "amounts with a currency sign",
        f"{_PLAIN} (keep one currency per table)",
    ),
    _Shape(
        "percent",
        _NUMBER,
        _full(r"[+-]?\d+(?:[.,]\d+)?\s*%"),
        "percentages with a % sign",
        "write the number alone (12.5, not 12.5%)",
    ),
    _Shape(
        "parentheses",
        _NUMBER,
        _full(r"\(\s*[\d.,]+\s*\)"),
        "accounting negatives in parentheses",
        "write a negative number with a minus sign, or leave refunds out of this table",
    ),
    _Shape(
        "space_thousands",
        _NUMBER,
        _full(r"[+-]?\d{1,3}(?:[ \u00a0\u202f']\d{3})+(?:[.,]\d+)?"),
        "amounts with spaces or apostrophes between the thousands",
        _PLAIN,
    ),
    _Shape(
        "comma",
        _NUMBER,
        _full(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?|[+-]?\d+,\d+|[+-]?\d{1,3}(?:\.\d{3})+,\d+"),
        "numbers with commas",
        _PLAIN,
        refine=_comma_meaning,
    ),
    _Shape(
        "date_with_time",
        frozenset({Kind.DATE}),
        _full(r"\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"),
        "dates with a time of day",
        "write the date alone (YYYY-MM-DD): a day boundary other than midnight UTC is not a date",
    ),
    _Shape(
        "slash_date",
        _DAY,
        lambda text: _SLASH.fullmatch(text) is not None,
        "dates in a local order",
        _ISO,
        refine=_day_order,
    ),
    _Shape(
        "year_slash",
        _DAY,
        _full(r"\d{4}[/.]\d{1,2}[/.]\d{1,2}(?:[ T].*)?"),
        "dates written YYYY/MM/DD",
        _ISO,
    ),
    _Shape(
        "month_name",
        _DAY,
        _full(
            r"(?:\d{1,2}[ -])?[A-Za-z]{3,9}\.?[ -]\d{1,2}(?:st|nd|rd|th)?,?[ -]\d{2,4}(?:[ T].*)?"
            r"|\d{1,2}[ -][A-Za-z]{3,9}\.?,?[ -]\d{2,4}(?:[ T].*)?"
        ),
        "dates with month names",
        _ISO,
    ),
    _Shape(
        "serial_day",
        _DAY,
        _full(r"[1-6]\d{4}(?:\.\d+)?"),
        "spreadsheet serial day numbers",
        f"export the cells as dates, not numbers; {_ISO}",
    ),
    _Shape(
        "epoch",
        frozenset({Kind.TIMESTAMP}),
        _full(r"\d{9,10}(?:\.\d+)?|\d{12,13}"),
        "Unix timestamps (seconds or milliseconds since 1970)",
        "write timestamps in ISO 8601 (2026-10-01T08:30:00Z)",
    ),
)

_RULE_WORDS: dict[Rule, tuple[str, str]] = {
    Rule.MISSING_VALUE: ("empty values in a required column", "fill in the value or drop the row"),
    Rule.UNPARSEABLE: (
        "values the column's type cannot read",
        "write numbers plainly and dates as YYYY-MM-DD (timestamps in ISO 8601)",
    ),
    Rule.NEGATIVE: ("negative values", "amounts must be 0 or more: fix them or leave the rows out"),
    Rule.OUT_OF_RANGE: (
        "values outside the column's range",
        "fix the values or leave the rows out",
    ),
    Rule.NOT_INTEGER: ("numbers that are not whole", "write whole numbers"),
    Rule.DUPLICATE_KEY: (
        "keys that several rows share (every such row is set aside)",
        "keep one row per key",
    ),
    Rule.UNKNOWN_ACCOUNT: (
        "accounts that are not among the valid accounts",
        "add the accounts to the accounts table, or leave the rows out",
    ),
    Rule.END_NOT_AFTER_START: (
        "ends on or before the start",
        "end_date is exclusive: it must come after start_date (leave it empty if ongoing)",
    ),
    Rule.RESOLVED_BEFORE_CREATED: (
        "resolutions before the ticket was created",
        "fix resolved_at or created_at",
    ),
    Rule.NOT_ALLOWED: (
        "values that are not among the column's allowed values",
        "write one of the values the contract lists for the column (see the README)",
    ),
    Rule.TOO_LONG: ("texts longer than the column allows", "shorten the texts"),
    Rule.MALFORMED_LINE: (
        "lines that do not split into the header's columns",
        'quote values that hold a comma, a quote or a line break ("like, this")',
    ),
}
"""What a group of rows breaking a rule looks like when no shape explains it."""


# --------------------------------------------------------------------------- money


_MONEY_JUNK = re.compile(rf"{_CURRENCY}|[\s\u00a0\u202f']", re.IGNORECASE)


def read_money(text: str | None) -> float | None:
    """Read an amount for the share estimate only, the way its writer meant it.

    Plain numbers as they are; ``$1,200.50``, ``2,884.05``, ``1.234,56``, ``12,5`` and
    ``1 200`` as 1200.5, 2884.05, 1234.56, 12.5 and 1200. None for anything else. This
    is never used to load a value: rows in these shapes stay set aside.
    """
    if text is None:
        return None
    cleaned = _MONEY_JUNK.sub("", text.strip())
    if cleaned.startswith("(") and cleaned.endswith(")"):
        cleaned = "-" + cleaned[1:-1]
    if "," in cleaned:
        last_comma, last_dot = cleaned.rfind(","), cleaned.rfind(".")
        if last_dot > last_comma or re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+", cleaned):
            cleaned = cleaned.replace(",", "")
        else:
            cleaned = cleaned.replace(".", "").replace(",", ".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- diagnose


@dataclass
class _Group:
    rows: list[int] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)


_HEADER = "header"
_FOLLOWS = "follows_account"


def _shape_of(kind: Kind | None, value: str | None) -> _Shape | None:
    if value is None or kind is None:
        return None
    for shape in _SHAPES:
        if kind in shape.kinds and shape.match(value):
            return shape
    return None


def _kind(table: str, column: str) -> Kind | None:
    contract = TABLES.get(table)
    if contract is None or not column:
        return None
    try:
        return contract.column(column).kind
    except KeyError:
        return None


def _repeated_headers(problems: Iterable[Any]) -> set[int]:
    """Return the rows whose every offending value is its own column's name."""
    verdict: dict[int, bool] = {}
    for p in problems:
        same = p.column != "" and isinstance(p.value, str) and p.value.strip() == p.column
        verdict[p.row] = verdict.get(p.row, True) and same
    return {row for row, all_same in verdict.items() if all_same}


def diagnose(
    table: str,
    problems: Sequence[Any],
    *,
    table_rows: int,
    money: Mapping[int, str | None] | None = None,
    valid_money: float | None = None,
    set_aside_accounts: frozenset[str] = frozenset(),
    account_of: Mapping[int, str | None] | None = None,
) -> list[Cause]:
    """Group one table's problems by cause.

    Parameters
    ----------
    table
        The contract table.
    problems
        Its problems (objects with ``row``, ``column``, ``rule`` and ``value``, as
        :class:`churnrisk.validate.Problem`), any order.
    table_rows
        Rows of the table as read (valid and set aside).
    money
        The raw text of the table's money column (``Table.money``) for each set-aside
        row, by row number; None when the table has none.
    valid_money
        The sum of the money column over the valid rows.
    set_aside_accounts
        The ``account_id`` values of the accounts set aside themselves: rows of other
        tables that name one of them are reported as following their account.
    account_of
        The raw ``account_id`` of each set-aside row, by row number (for the above).

    Returns
    -------
    list of Cause
        Largest first, then in column order. A row breaking two rules counts under
        both causes; a repeated header line is one cause of its own.
    """
    headers = _repeated_headers(problems)
    kinds = {c: _kind(table, c) for c in {p.column for p in problems}}
    groups: dict[tuple[str, Rule, str], _Group] = {}
    for p in sorted(problems, key=lambda q: q.row):
        if p.row in headers:
            key = ("", Rule.UNPARSEABLE, _HEADER)
        elif (
            p.rule is Rule.UNKNOWN_ACCOUNT
            and account_of is not None
            and account_of.get(p.row) in set_aside_accounts
        ):
            key = (p.column, p.rule, _FOLLOWS)
        else:
            shape = _shape_of(kinds[p.column], p.value) if p.rule is Rule.UNPARSEABLE else None
            key = (p.column, p.rule, shape.name if shape else "")
        group = groups.setdefault(key, _Group())
        if not group.rows or group.rows[-1] != p.row:
            group.rows.append(p.row)
            group.values.append(p.value)
    share = _MoneyShare.of(money, valid_money)
    causes = [_cause(table, key, group, table_rows, share) for key, group in groups.items()]
    order = {c.name: i for i, c in enumerate(TABLES[table].columns)} if table in TABLES else {}
    return sorted(causes, key=lambda c: (-c.rows, order.get(c.column, -1), str(c.rule)))


def _words(key: tuple[str, Rule, str], values: Sequence[str | None]) -> tuple[str, str]:
    """Return what a group's values look like and the fix."""
    _, rule, name = key
    if name == _HEADER:
        return (
            "the header line repeated mid-file",
            "remove the repeated header lines (files joined together keep one header)",
        )
    if name == _FOLLOWS:
        return (
            "rows of accounts that were set aside themselves",
            "correct those accounts' rows in the accounts table first",
        )
    shape = next((s for s in _SHAPES if s.name == name), None)
    if shape is None:
        return _RULE_WORDS[rule]
    if shape.refine is not None:
        return shape.refine([v for v in values if v is not None])
    return shape.seen, shape.fix


@dataclass(frozen=True)
class _MoneyShare:
    """The set-aside rows' amounts and the table's total, to share money among causes."""

    amounts: Mapping[int, float | None]
    total: float

    @classmethod
    def of(
        cls, money: Mapping[int, str | None] | None, valid_money: float | None
    ) -> _MoneyShare | None:
        if money is None or valid_money is None:
            return None
        amounts = {row: read_money(text) for row, text in money.items()}
        total = valid_money + math.fsum(a for a in amounts.values() if a is not None)
        return cls(amounts, total) if total > 0 else None

    def of_rows(self, rows: Sequence[int]) -> float | None:
        """Share (0-1) of the total in ``rows``; None when one of their amounts is unread."""
        found = [self.amounts.get(r) for r in rows]
        if any(a is None for a in found):
            return None
        return math.fsum(a for a in found if a is not None) / self.total


def _cause(
    table: str,
    key: tuple[str, Rule, str],
    group: _Group,
    table_rows: int,
    share: _MoneyShare | None,
) -> Cause:
    column, rule, _ = key
    seen, fix = _words(key, group.values)
    return Cause(
        table=table,
        column=column,
        rule=rule,
        seen=seen,
        fix=fix,
        rows=len(group.rows),
        table_rows=table_rows,
        examples=tuple(dict.fromkeys(group.values))[:EXAMPLES],
        first_rows=tuple(group.rows[:FIRST_ROWS]),
        money_share=None if share is None else share.of_rows(group.rows),
        money_column=TABLES[table].money if table in TABLES else None,
    )
