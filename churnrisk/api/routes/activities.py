"""CS activities on an account (read with any key, written with a write key) and its plays.

Not cached: an activity is read back by the manager who just wrote it, and these
answers are small (one account's log, one account's plays).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from churnrisk.api.deps import ReadKey, StateDep, StoreDep, WriteKey
from churnrisk.api.errors import ProblemError, never_scored, problem_responses
from churnrisk.api.schemas import (
    MAX_TEXT,
    TEXT_PATTERN,
    ActivityCreate,
    ActivityListPublic,
    ActivityPublic,
    PlayListPublic,
)
from churnrisk.api.state import dumps
from churnrisk.playbooks import BookRank, match
from churnrisk.store import ScoreStore

router = APIRouter(prefix="/v1/accounts", tags=["activities"])

JSON = "application/json"

AccountId = Annotated[str, Path(min_length=1, max_length=MAX_TEXT, pattern=TEXT_PATTERN)]

ACCOUNT_LINKS: dict[str, Any] = {
    name: {
        "operationId": operation,
        "parameters": {"account_id": "$response.body#/data/0/account_id"},
        "description": f"{what} of the first account of the page.",
    }
    for name, operation, what in (
        ("activities", "list_activities", "The CS activities"),
        ("addActivity", "add_activity", "Record a CS activity"),
        ("plays", "account_plays", "The matching plays"),
        ("usage", "account_usage", "The monthly usage"),
    )
}
"""OpenAPI links from the at-risk list to the account's activities and plays."""

FUTURE_SLACK = timedelta(days=1)
"""How far ahead of the server's clock an activity's time may lie (time zones, clocks)."""


def _latest(store: ScoreStore, account_id: str) -> dict[str, Any]:
    """Return the account's latest score row, or answer 404 for an account never scored."""
    found = store.account_detail(account_id)
    if found is None:
        raise never_scored(account_id)
    return found[0]


@router.get(
    "/{account_id}/activities",
    response_model=ActivityListPublic,
    responses=problem_responses(400, 401, 404, 503),
    summary="One account's CS activities",
    operation_id="list_activities",
)
def list_activities(
    account_id: AccountId,
    _key: ReadKey,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500, description="Activities to return.")] = 100,
) -> Response:
    """Return the account's activities, newest first, its last contact and its snooze."""
    _latest(store, account_id)
    today = datetime.now(UTC).date()
    body = {
        "account_id": account_id,
        "last_contact": store.activities.last_contacts(account_ids=[account_id]).get(account_id),
        "snoozed_until": store.activities.snoozed(today, account_ids=[account_id]).get(account_id),
        "data": [a.to_dict() for a in store.activities.for_account(account_id, limit=limit)],
    }
    return Response(dumps(body), media_type=JSON)


@router.post(
    "/{account_id}/activities",
    status_code=201,
    response_model=ActivityPublic,
    responses=problem_responses(400, 401, 403, 404, 503),
    summary="Record a CS activity on an account",
    operation_id="add_activity",
)
def add_activity(
    account_id: AccountId, body: ActivityCreate, _key: WriteKey, store: StoreDep
) -> Response:
    """Record a call, meeting, e-mail, offer, note or task; optionally snooze the account.

    Needs a key of scope `write` or `admin`.
    """
    _latest(store, account_id)
    when = body.occurred_at
    if when is not None:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        if when > datetime.now(UTC) + FUTURE_SLACK:
            raise ProblemError(
                400,
                f"occurred_at {when.isoformat()} is in the future; record what has happened",
                kind="invalid-request",
            )
    made = store.activities.add(
        account_id,
        body.kind,
        body.text,
        author=body.author,
        occurred_at=when,
        outcome=body.outcome,
        snooze_until=body.snooze_until,
    )
    return Response(dumps(made.to_dict()), status_code=201, media_type=JSON)


@router.get(
    "/{account_id}/plays",
    response_model=PlayListPublic,
    responses=problem_responses(400, 401, 404, 503),
    summary="The plays that match an account",
    operation_id="account_plays",
)
def plays(account_id: AccountId, _key: ReadKey, store: StoreDep, state: StateDep) -> Response:
    """Return the playbook's plays that match the account's latest score, and why each does."""
    latest = _latest(store, account_id)
    rank = BookRank(*store.mrr_rank(latest["run_id"], float(latest["mrr"])))
    found = [m.to_dict() for m in match(state.playbook, latest, rank=rank)]
    return Response(dumps({"account_id": account_id, "data": found}), media_type=JSON)
