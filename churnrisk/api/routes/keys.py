"""API key management (admin keys only). Keys are stored hashed; a key's text is shown once."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response

from churnrisk.api.deps import AdminKey, StateDep, StoreDep
from churnrisk.api.errors import ProblemError, problem_responses
from churnrisk.api.schemas import (
    KEY_ID_PATTERN,
    ApiKeyCreate,
    ApiKeyCreatedPublic,
    ApiKeyListPublic,
)
from churnrisk.api.state import dumps
from churnrisk.store import ApiKey

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def key_dict(key: ApiKey) -> dict[str, object]:
    """Return a key as listed: id, name, scope, created and revoked times; no secret."""
    return {
        "key_id": key.key_id,
        "name": key.name,
        "scope": key.scope,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
    }


@router.get(
    "",
    response_model=ApiKeyListPublic,
    responses=problem_responses(401, 403, 503),
    summary="List the API keys",
)
def list_keys(_key: AdminKey, store: StoreDep) -> Response:
    """Return every key, revoked ones included (with `revoked_at`); never a key's text."""
    return Response(
        dumps({"data": [key_dict(k) for k in store.list_keys()]}), media_type="application/json"
    )


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreatedPublic,
    responses=problem_responses(400, 401, 403, 503),
    summary="Create an API key",
)
def create_key(body: ApiKeyCreate, _key: AdminKey, store: StoreDep) -> Response:
    """Create a key and return its text, this once: only its SHA-256 is stored."""
    text, key = store.create_key(body.name, body.scope)
    out = key_dict(key)
    out["key"] = text
    return Response(
        dumps(out),
        status_code=201,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@router.delete(
    "/{key_id}",
    status_code=204,
    responses=problem_responses(400, 401, 403, 404, 503),
    summary="Revoke an API key",
)
def revoke_key(
    key_id: Annotated[str, Path(pattern=KEY_ID_PATTERN, description="As `GET /v1/keys` lists it.")],
    _key: AdminKey,
    store: StoreDep,
    state: StateDep,
) -> Response:
    """Revoke a key. Other service workers may accept it for up to a few seconds more."""
    if not store.revoke_key(key_id):
        raise ProblemError(
            404, f"no API key {key_id!r}: `GET /v1/keys` lists them", kind="unknown-key"
        )
    state.keys.forget(key_id)
    return Response(status_code=204)
