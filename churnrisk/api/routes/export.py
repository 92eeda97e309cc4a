"""The CRM export: every account of the current run, streamed as CSV or JSON.

A CRM pulls it nightly and upserts by ``account_id``. The ``updated_since`` cursor makes
the pull incremental: pass the previous answer's ``X-Next-Updated-Since`` (the scored-at
time of the run it exported); when no run was scored after it, the answer has no rows
and echoes the same cursor. Rows are read from the store in batches and written as they
come, so an export of any size never sits in memory.

``spreadsheet=true`` makes the CSV safe to open in Excel or LibreOffice (the dashboard's
download uses it): a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return gets a leading ``'``, so a name such as ``=HYPERLINK(...)`` shows as
text instead of running as a formula (OWASP, "CSV Injection"), and the file starts with
a UTF-8 byte-order mark so Excel reads accented names right. Numbers are never touched.
A CRM import wants names as they are and leaves it off (the default).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from churnrisk.api.deps import ReadKey, StoreDep
from churnrisk.api.errors import bad_request, param_error, problem_responses
from churnrisk.api.routes import shapes
from churnrisk.api.state import dumps
from churnrisk.scorerow import EXPORT_FIELDS, json_value
from churnrisk.store import RunRecord

router = APIRouter(prefix="/v1", tags=["export"])

RUN_COLUMNS: tuple[str, ...] = ("as_of", "updated_at", "run_id", "churn_version")
"""The run's columns, after the score fields: its as-of date, when it was scored, its id
and the churn model's version."""

CSV_COLUMNS: tuple[str, ...] = (*(f.export for f in EXPORT_FIELDS if f.export), *RUN_COLUMNS)
"""Columns of the export, in order (JSON rows have the same members): the score fields the
declaration exports (:data:`churnrisk.scorerow.EXPORT_FIELDS`), then :data:`RUN_COLUMNS`."""

BATCH = 5000


RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
"""An RFC 3339 date-time (section 5.6), the OpenAPI ``date-time`` format: offset required."""

_SINCE_HINT = "such as 2026-11-01T06:00:00Z (the previous export's X-Next-Updated-Since)"


def _instant(found: re.Match[str]) -> datetime | None:
    """Return the UTC instant of an RFC 3339 match, or ``None`` for a day or time that is not.

    A leap second (``23:59:60`` UTC) is the last instant of its minute. Instants before
    year 1 or after 9999 in UTC, which Python cannot hold, are clamped to those ends.
    """
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    leap = second == "60"
    zone = "+00:00" if offset in ("Z", "z") else offset
    try:  # year 0000 exists in RFC 3339 but not in Python: check the rest in leap year 2000
        value = datetime.fromisoformat(
            f"{'2000' if year == '0000' else year}-{month}-{day}T{hour}:{minute}:"
            f"{'59.999999' if leap else second + (fraction or '')}{zone}"
        )
    except ValueError:
        return None
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)
    if leap and (utc.hour, utc.minute) != (23, 59):
        return None
    return datetime.min.replace(tzinfo=UTC) if year == "0000" else utc


def parse_since(text: str | None) -> datetime | None:
    """Parse ``updated_since``: an RFC 3339 date-time with its offset, as UTC.

    Exactly what the OpenAPI document declares (``format: date-time``): a date-time
    without an offset, a date alone, or an empty value is refused, since none says which
    instant it means; leave the parameter out to export every account.

    Raises
    ------
    ProblemError
        400 when ``text`` is not an RFC 3339 date-time.
    """
    if text is None:
        return None
    found = RFC3339.match(text)
    value = _instant(found) if found is not None else None
    if value is not None:
        return value
    if not text:
        message = "is empty: leave it out to export every account"
    elif " " in text:  # a '+' sent unencoded in a query string arrives as a space
        message = "has a space where its offset's `+` should be: send `+` as %2B, or UTC as Z"
    else:
        message = f"is not an RFC 3339 date-time with its offset, {_SINCE_HINT}"
    raise bad_request(
        f"invalid updated_since: it {message}",
        [param_error("updated_since", "query", message)],
    )


def _stamp(value: datetime) -> str:
    """Return a UTC instant as RFC 3339 with ``Z``: a cursor needing no URL encoding."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_row(row: Mapping[str, Any], run: RunRecord) -> dict[str, Any]:
    """Return one scores row as the export gives it (``top_drivers``: texts of risers).

    Each exported field as :func:`churnrisk.scorerow.json_value` gives it for the export:
    ``renewal_date`` is ISO text and ``days_to_renewal`` whole days, both ``None`` when
    the account has no known term end (or was scored before the store kept them).
    """
    out: dict[str, Any] = {
        str(f.export): json_value(f, row.get(f.name), answer="export") for f in EXPORT_FIELDS
    }
    out["as_of"] = run.as_of.isoformat()
    out["updated_at"] = run.scored_at.isoformat()
    out["run_id"] = run.run_id
    out["churn_version"] = run.churn_version
    return out


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a text cell as a formula."""


def spreadsheet_safe(text: str) -> str:
    """Return ``text`` with a leading ``'`` when a spreadsheet would run it as a formula.

    >>> spreadsheet_safe("=1+2"), spreadsheet_safe("Acme"), spreadsheet_safe("")
    ("'=1+2", 'Acme', '')
    """
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def _csv_value(value: Any, spreadsheet: bool) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, list):
        value = " | ".join(str(v) for v in value)
    if spreadsheet and isinstance(value, str):
        return spreadsheet_safe(value)
    return value


def _csv(
    run: RunRecord | None, batches: Iterator[list[dict[str, Any]]], spreadsheet: bool
) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield ("\ufeff" if spreadsheet else "") + buffer.getvalue()
    if run is None:
        return
    for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        for row in batch:
            out = export_row(row, run)
            writer.writerow([_csv_value(out[k], spreadsheet) for k in CSV_COLUMNS])
        yield buffer.getvalue()


def _json(
    run: RunRecord | None,
    batches: Iterator[list[dict[str, Any]]],
    since: datetime | None,
    next_since: str | None,
) -> Iterator[bytes]:
    head = {
        "run": shapes.run_dict(run) if run is not None else None,
        "updated_since": _stamp(since) if since else None,
        "next_updated_since": next_since,
    }
    yield dumps(head)[:-1] + b',"data":['
    first = True
    if run is not None:
        for batch in batches:
            if not batch:
                continue
            parts = b",".join(dumps(export_row(row, run)) for row in batch)
            yield parts if first else b"," + parts
            first = False
    yield b"]}"


@router.get(
    "/export/scores",
    responses={
        200: {
            "description": "The rows, streamed: CSV (with a header) or JSON.",
            "content": {"text/csv": {}, "application/json": {}},
        },
        **problem_responses(400, 401, 503),
    },
    summary="Export the current scores for a CRM",
    response_class=StreamingResponse,
)
def export_scores(
    _key: ReadKey,
    store: StoreDep,
    format: Annotated[
        Literal["csv", "json"], Query(description="`csv` (default) or `json`.")
    ] = "csv",
    updated_since: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Only if the current run was scored after this instant, an RFC 3339"
            " date-time with its offset (`2026-11-01T06:00:00Z`): pass the previous export's"
            " `X-Next-Updated-Since`. Leave it out to export every account.",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    spreadsheet: Annotated[
        bool,
        Query(
            description="CSV for a spreadsheet: text cells that would run as formulas get a"
            " leading `'`, and the file starts with a UTF-8 byte-order mark. Leave it off"
            " for a CRM import."
        ),
    ] = False,
) -> StreamingResponse:
    """Stream one row per account of the current run, keyed by `account_id`.

    Columns: account_id, name, segment, plan, owner, risk_tier, churn_probability,
    probability_change, mrr, mrr_at_risk, revenue_12m, lifetime_clv, renewal_date and
    days_to_renewal (context: the nearest end of a subscription term), top_drivers (the
    sentences of the drivers raising risk, joined by ` | ` in CSV), as_of, updated_at
    (when the run was scored), run_id, churn_version. The `X-Next-Updated-Since` header
    (and `next_updated_since` in JSON) is the cursor of the next incremental pull.
    With `spreadsheet=true` the CSV is safe to open in Excel (see the module notes).
    """
    since = parse_since(updated_since)
    run, batches = store.export_rows(since, batch_size=BATCH)
    cursor = run.scored_at if run is not None else since
    next_since = _stamp(cursor) if cursor is not None else None
    headers = {"Cache-Control": "no-store"}
    if next_since is not None:
        headers["X-Next-Updated-Since"] = next_since
    if format == "json":
        return StreamingResponse(
            _json(run, batches, since, next_since), media_type="application/json", headers=headers
        )
    name = f"churnrisk-scores-{run.as_of.isoformat()}.csv" if run else "churnrisk-scores.csv"
    headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return StreamingResponse(
        _csv(run, batches, spreadsheet), media_type="text/csv", headers=headers
    )
