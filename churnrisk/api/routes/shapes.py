"""Build the answers' dictionaries from the store's records, in the schemas' shapes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from churnrisk.api.schemas import (
    ChangeDriverPublic,
    DriverPublic,
    HistoryPointPublic,
    RunPublic,
)
from churnrisk.scorerow import Api, ScoreField, api_fields, json_value
from churnrisk.store import RunRecord

_RUN_FIELDS = tuple(RunPublic.model_fields)
_LIST_FIELDS = api_fields("list")
_DETAIL_FIELDS = api_fields("detail")
_DRIVER_FIELDS = tuple(DriverPublic.model_fields)
_CHANGE_FIELDS = tuple(ChangeDriverPublic.model_fields)
_HISTORY_FIELDS = tuple(HistoryPointPublic.model_fields)


M = TypeVar("M", bound=BaseModel)


def parse_query(request: Request, model: type[M], *, lists: tuple[str, ...] = ()) -> M:
    """Validate a request's query string into ``model`` (unknown parameters are ignored).

    FastAPI's own parsing of declared query parameters introspects each parameter's type
    on every request, which costs more than the whole cached answer on the hot routes;
    this validates the same model in one call. Errors are reported exactly as FastAPI's
    (a 400 naming each parameter). Document the parameters with :func:`query_parameters`.

    Parameters
    ----------
    request
        The request.
    model
        A pydantic model of the parameters.
    lists
        Parameters that may repeat (``tier=a&tier=b``), read as lists.
    """
    query = request.query_params
    data = {
        name: query.getlist(name) if name in lists else query[name]
        for name in query
        if name in model.model_fields
    }
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Return the OpenAPI ``parameters`` of a query model (see :func:`parse_query`)."""
    schema = model.model_json_schema()
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        if prop.get("type") == "array":
            prop.pop("default", None)
        item = {"name": name, "in": "query", "required": False, "schema": prop}
        if description:
            item["description"] = description
        out.append(item)
    return out


def run_dict(run: RunRecord | Mapping[str, Any]) -> dict[str, Any]:
    """Return a run (a record or its ``to_dict()``) in the shape of ``RunPublic``."""
    full = run.to_dict() if isinstance(run, RunRecord) else run
    return {k: full.get(k) for k in _RUN_FIELDS}


def _pick(item: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    return {k: item.get(k) for k in fields}


_ITEM_FIELDS = {"drivers": _DRIVER_FIELDS, "change_drivers": _CHANGE_FIELDS}


def _score_fields(
    row: Mapping[str, Any], fields: Iterable[ScoreField], answer: Api
) -> dict[str, Any]:
    """Return the score fields of a stored row as the answer gives them (items picked)."""
    out = {}
    for f in fields:
        value = json_value(f, row.get(f.name), answer=answer)
        if f.kind in _ITEM_FIELDS and isinstance(value, list):
            value = [_pick(item, _ITEM_FIELDS[f.kind]) for item in value]
        out[f.name] = value
    return out


def risk_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return a scores row as :class:`AccountRiskPublic` (drivers raising risk only)."""
    return _score_fields(row, _LIST_FIELDS, "list")


CONTACT_FIELDS = ("last_contact", "snoozed_until", "needs_contact")
"""What the at-risk list adds to each score row from the CS activities."""


def at_risk_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Return a page row of the store as :class:`AtRiskRowPublic` (score and contact)."""
    out = risk_row(row)
    out.update({k: row.get(k) for k in CONTACT_FIELDS})
    out["needs_contact"] = bool(out["needs_contact"])
    return out


def detail(row: Mapping[str, Any], history: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Return an account's latest row and history as :class:`AccountDetailPublic`."""
    out = _score_fields(row, _DETAIL_FIELDS, "detail")
    for key in ("as_of", "scored_at", "run_id", "churn_version", "clv_version", "previous_as_of"):
        out[key] = row.get(key)
    out["current"] = bool(row.get("current"))
    out["history"] = [_pick(h, _HISTORY_FIELDS) for h in history]
    return out
