"""The at-risk list, the renewals, one account's detail, the summary and the trend.

These answers only change when a new run lands, so they are served from the response
cache (serialised bytes keyed by the store's marker and the normalised request). The
routes are ``async``: a cache hit costs no thread hop; a miss reads the store in the
thread pool, once for all the concurrent requests that miss on the same answer.

The at-risk list and the renewals also carry what customer success did (last contact,
snooze, needs contact), which changes with every activity, and the day (a snooze ends,
a contact ages). Their cache keys therefore hold the activities' stamp
(:meth:`ActivityStore.stamp <churnrisk.store.activities.ActivityStore.stamp>`: a
version every activity write raises in its own transaction; one primary-key read per
request) and today's UTC date, rather than leaving the activity columns uncached. A POST
of an activity changes the stamp in the database, so the very next list request of any
worker misses and shows it, while the score rows stay cached between activities.
Leaving the activity columns out of the cache would not do: the snooze filter decides
which accounts are on a page, so the page itself depends on the activities.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from churnrisk.api.deps import ReadKey, StateDep, StoreDep, current_marker, get_store
from churnrisk.api.errors import (
    ProblemError,
    bad_request,
    never_scored,
    no_run,
    param_error,
    problem_responses,
)
from churnrisk.api.routes import shapes
from churnrisk.api.routes.activities import ACCOUNT_LINKS
from churnrisk.api.schemas import (
    MAX_TEXT,
    TEXT_PATTERN,
    AccountDetailPublic,
    AtRiskPagePublic,
    AtRiskParams,
    RenewalsPublic,
    SearchPublic,
    SummaryPublic,
    TrendPublic,
)
from churnrisk.api.state import DETAIL_TTL, Marker, ServiceState, dumps
from churnrisk.store import (
    AtRiskQuery,
    InvalidCursorError,
    NoRunError,
    RunRecord,
    ScoreStore,
    StaleCursorError,
)

router = APIRouter(prefix="/v1", tags=["accounts"])

JSON = "application/json"


def _no_run() -> ProblemError:
    return no_run()


def _tiers(requested: list[str], run: RunRecord) -> tuple[str, ...]:
    """Return the requested tiers, riskiest first, in the run's spelling where it has them.

    Tiers match case-insensitively. A name that is not a tier of the run is kept as
    given: it matches no account, so it narrows the page to nothing (and
    :func:`_absent_notes` says why), as a segment or owner no account has does.
    """
    by_lower = {name.lower(): name for name in run.tier_names}
    wanted = {by_lower.get(t.lower(), t) for t in requested}
    known = [name for name in run.tier_names if name in wanted]
    return (*known, *sorted(wanted - set(known)))


MAX_LISTED = 10
"""Values a note lists before it points at `/v1/summary` for the rest."""


def _listing(values: list[str]) -> str:
    if not values:
        return "none"
    shown = ", ".join(values[:MAX_LISTED])
    more = len(values) - MAX_LISTED
    return f"{shown} and {more} more (`GET /v1/summary` lists them)" if more > 0 else shown


def _absent_notes(store: ScoreStore, run: RunRecord, query: AtRiskQuery) -> list[str]:
    """Say which filter values no account of the current run has (for an empty page)."""
    known: dict[str, list[str]] = {"tier": run.tier_names}
    asked = {"segment": query.segment, "plan": query.plan, "owner": query.owner}
    if any(value is not None for value in asked.values()):
        summary = store.summary() or {}
        known.update({name: summary.get(f"{name}s", []) for name in asked})
    wanted = [("tier", tier) for tier in query.tiers]
    wanted += [(name, value) for name, value in asked.items() if value is not None]
    return [
        f"no account in the current run has {name} {value!r}; the {name}s are"
        f" {_listing(known[name])}"
        for name, value in wanted
        if value not in known[name]
    ]


def _store_problem(exc: Exception) -> ProblemError:
    if isinstance(exc, StaleCursorError):
        return ProblemError(409, str(exc), kind="stale-cursor")
    if isinstance(exc, InvalidCursorError):
        return bad_request(
            str(exc),
            [param_error("cursor", "query", "is not a cursor this API made for this sort")],
            kind="invalid-cursor",
        )
    return _no_run()


async def _cached(
    state: ServiceState,
    key: Any,
    build: Callable[..., bytes],
    *args: Any,
    inline: bool = False,
) -> Response:
    """Answer from the cache, or build the body once for all concurrent misses on ``key``."""
    body = state.cache.get(key)
    if body is None:
        body = await state.flights.run(key, build, *args, inline=inline)
    return Response(body, media_type=JSON)


def _cache_or_drop(state: ServiceState, marker: Marker, key: Any, run_id: str, body: bytes) -> None:
    """Cache ``body`` unless the store moved on since ``marker`` was read."""
    if marker.current is not None and marker.current.run_id == run_id:
        state.cache.put(key, body)
    else:
        state.runs.invalidate()


def _at_risk_body(state: ServiceState, marker: Marker, query: AtRiskQuery, key: Any) -> bytes:
    store = get_store(state)
    try:
        page = store.at_risk(query)
    except (StaleCursorError, InvalidCursorError, NoRunError) as exc:
        raise _store_problem(exc) from exc
    body = dumps(
        {
            "run": shapes.run_dict(page.run),
            "data": [shapes.at_risk_row(row) for row in page.rows],
            "next_cursor": page.next_cursor,
            "total": page.total,
            "notes": _absent_notes(store, page.run, query) if page.total == 0 else [],
        }
    )
    _cache_or_drop(state, marker, key, page.run.run_id, body)
    return body


@router.get(
    "/accounts/at-risk",
    response_model=AtRiskPagePublic,
    responses={200: {"links": ACCOUNT_LINKS}, **problem_responses(400, 401, 404, 409, 503)},
    summary="The at-risk list of the current run",
    openapi_extra={"parameters": shapes.query_parameters(AtRiskParams)},
)
async def at_risk(_key: ReadKey, state: StateDep, request: Request) -> Response:
    """Return one page of the current run's accounts, riskiest first, with top drivers.

    Filters are AND-ed; `tier` matches any of the given tiers. Filters narrow, they never
    refuse: a tier, segment, plan or owner that no account of the current run has gives
    an empty page, whose `notes` say which value is absent and list the ones there are.
    Pages are keyset-paginated: pass `next_cursor` as `cursor` until it is null. A cursor
    made before a new run landed answers 409: start again.
    """
    params = shapes.parse_query(request, AtRiskParams, lists=("tier",))
    marker = await current_marker(state)
    if marker.current is None:
        raise _no_run()
    query = AtRiskQuery(
        tiers=_tiers(params.tier, marker.current) if params.tier else (),
        segment=params.segment,
        plan=params.plan,
        owner=params.owner,
        min_probability=params.min_probability,
        min_mrr=params.min_mrr,
        renewing_within=params.renewing_within,
        sort=params.sort,
        limit=params.limit,
        cursor=params.cursor,
        include_snoozed=params.include_snoozed,
        contact_days=params.contact_days,
        today=datetime.now(UTC).date(),
    )
    key = (marker.key, "at-risk", query, await _activity_stamp(state))
    return await _cached(state, key, _at_risk_body, state, marker, query, key)


async def _activity_stamp(state: ServiceState) -> int:
    """Return the activities' stamp for a cache key (see the module's docstring).

    Read afresh for every request, never shared with a concurrent one: a read that began
    before an activity was committed could miss it.
    """
    store = get_store(state)
    if state.inline_reads:
        return store.activities.stamp()
    return await anyio.to_thread.run_sync(store.activities.stamp, limiter=state.flights.limiter)


MAX_RENEWALS = 500
"""Renewal rows listed at most (the tiers and total count them all)."""


def _renewals_body(
    state: ServiceState,
    marker: Marker,
    days: int,
    owner: str | None,
    today: date,
    key: Any,
) -> bytes:
    store = get_store(state)
    try:
        found = store.reader.renewals(days, owner=owner, today=today, limit=MAX_RENEWALS)
    except NoRunError as exc:
        raise _no_run() from exc
    run = found["run"]
    body = dumps(
        {
            "as_of": run.as_of,
            "days": days,
            "owner": owner,
            "tiers": found["tiers"],
            "total": found["total"],
            "data": [shapes.at_risk_row(row) for row in found["rows"]],
            "truncated": found["truncated"],
        }
    )
    _cache_or_drop(state, marker, key, run.run_id, body)
    return body


OwnerFilter = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=MAX_TEXT,
        pattern=TEXT_PATTERN,
        description='Only this owner\'s accounts ("my book").',
    ),
]
"""The owner filter of the book-wide answers (summary, renewals)."""


@router.get(
    "/renewals",
    response_model=RenewalsPublic,
    responses=problem_responses(400, 401, 404, 503),
    summary="Renewals of the next days, with ARR up for renewal by risk tier",
)
async def renewals(
    _key: ReadKey,
    state: StateDep,
    days: Annotated[
        int, Query(ge=1, le=730, description="Renewals within this many days of the as-of date.")
    ] = 90,
    owner: OwnerFilter = None,
) -> Response:
    """Return the current run's accounts renewing within `days` days, soonest first.

    `tiers` gives, for every tier of the run (riskiest first, zeros included), the
    accounts renewing and the MRR and ARR (12 x MRR) up for renewal (`renewal_mrr`);
    `total` the same over every tier. `data` lists the accounts like the at-risk list
    (snoozed ones included), at most 500 (`truncated` says when there are more). An
    owner with no account gives zeros, not an error.
    """
    marker = await current_marker(state)
    if marker.current is None:
        raise _no_run()
    today = datetime.now(UTC).date()
    key = (marker.key, "renewals", days, owner, today, await _activity_stamp(state))
    return await _cached(state, key, _renewals_body, state, marker, days, owner, today, key)


def _detail_body(state: ServiceState, marker: Marker, account_id: str, key: Any) -> bytes:
    store = get_store(state)
    run_id = marker.current.run_id if marker.current else ""
    found = store.account_detail(account_id, current_run_id=run_id or None)
    if found is None:
        raise never_scored(account_id)
    body = dumps(shapes.detail(*found))
    _cache_or_drop(state, marker, key, run_id, body)
    return body


def _summary_body(state: ServiceState, marker: Marker, owner: str | None, key: Any) -> bytes:
    store = get_store(state)
    summary = store.summary(owner)
    if summary is None:
        raise _no_run()
    run = summary["run"]
    out = {k: summary.get(k) for k in SummaryPublic.model_fields}
    out["owner"] = owner
    out["run"] = shapes.run_dict(run)
    out["tier_names"] = [*run["tiers"], run["low_tier"]]
    body = dumps(out)
    _cache_or_drop(state, marker, key, str(run["run_id"]), body)
    return body


@router.get(
    "/summary",
    response_model=SummaryPublic,
    responses=problem_responses(400, 401, 404, 503),
    summary="Headline figures of the current run",
)
async def summary(
    _key: ReadKey,
    state: StateDep,
    owner: OwnerFilter = None,
) -> Response:
    """Return the current run's accounts, MRR, MRR at risk per tier and the filter values.

    With `owner`, the figures and tiers are that owner's book; an owner with no account
    in the run gets zeros, not an error (filters narrow, they never refuse).
    """
    marker = await current_marker(state)
    if marker.current is None:
        raise _no_run()
    key = (marker.key, "summary", owner)
    return await _cached(state, key, _summary_body, state, marker, owner, key)


@router.get(
    "/accounts/search",
    response_model=SearchPublic,
    responses=problem_responses(400, 401, 503),
    summary="Find accounts of the current run by id or name",
)
def search(
    _key: ReadKey,
    store: StoreDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_TEXT,
            pattern=TEXT_PATTERN,
            description="Text the account id or name contains (any case).",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=100, description="Hits to return.")] = 20,
) -> Response:
    """Return the current run's accounts whose id or name contains `q`, riskiest first."""
    hits = store.search(q, limit=limit)
    return Response(dumps({"q": q, "data": hits}), media_type=JSON)


TREND_POINTS = 26
"""As-of dates in the trend by default: half a year of weekly runs, two of monthly ones."""


_TREND_RUN_FIELDS = ("as_of", "run_id", "scored_at", "churn_version")


def _trend_body(state: ServiceState, marker: Marker, limit: int, key: Any) -> bytes:
    store = get_store(state)
    points = [
        {
            **{k: v for k, v in shapes.run_dict(p["run"]).items() if k in _TREND_RUN_FIELDS},
            "accounts": p["accounts"],
            "mrr": p["mrr"],
            "mrr_at_risk": p["mrr_at_risk"],
            "tiers": p["tiers"],
        }
        for p in store.trend(limit)
    ]
    body = dumps({"points": points})
    if points:  # the newest point is the current run's: cache unless a run landed since
        _cache_or_drop(state, marker, key, points[-1]["run_id"], body)
    return body


@router.get(
    "/trend",
    response_model=TrendPublic,
    responses=problem_responses(400, 401, 503),
    summary="The book's risk over time",
)
async def trend(
    _key: ReadKey,
    state: StateDep,
    limit: Annotated[
        int, Query(ge=1, le=520, description="The latest this many as-of dates (default 26).")
    ] = TREND_POINTS,
) -> Response:
    """Return accounts, MRR and MRR at risk per tier for each scored as-of date.

    One point per as-of date, from its newest run (a re-scored date counts once), oldest
    first, so a CS team sees whether the book is getting riskier week over week. A
    backfilled date shows within a minute. No runs yet: an empty list.
    """
    marker = await current_marker(state)
    key = (marker.key, "trend", limit, int(time.monotonic() // DETAIL_TTL))
    return await _cached(state, key, _trend_body, state, marker, limit, key)


@router.get(
    "/accounts/{account_id:path}",
    response_model=AccountDetailPublic,
    responses=problem_responses(400, 401, 404, 503),
    summary="One account's latest score, drivers and history",
)
async def account(
    _key: ReadKey,
    state: StateDep,
    account_id: Annotated[str, Path(min_length=1, max_length=MAX_TEXT, pattern=TEXT_PATTERN)],
) -> Response:
    """Return the account's latest score over all runs, its drivers, change and history.

    `current` is false when the account was not in the current run (it stopped paying
    or was not scored lately); the score is then its last one.
    """
    marker = await current_marker(state)
    key = (marker.key, "account", account_id, int(time.monotonic() // DETAIL_TTL))
    return await _cached(
        state, key, _detail_body, state, marker, account_id, key, inline=state.inline_reads
    )
