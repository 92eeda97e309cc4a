"""Build the answers' dictionaries from the store's records, in the schemas' shapes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from churnrisk.api.schemas import (
    AccountRiskPublic,
    ChangeDriverPublic,
    DriverPublic,
    HistoryPointPublic,
    RunPublic,
)
from churnrisk.store import RunRecord

_RUN_FIELDS = tuple(RunPublic.model_fields)
_RISK_FIELDS = tuple(k for k in AccountRiskPublic.model_fields if k != "drivers")
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


def drivers(items: Any, *, risers_only: bool) -> list[dict[str, Any]]:
    """Return the stored drivers as :class:`DriverPublic` dicts (risers first, as stored)."""
    return [
        _pick(d, _DRIVER_FIELDS)
        for d in items or ()
        if not risers_only or d.get("direction") == "raises"
    ]


def risk_row(row: Mapping[str, Any], *, risers_only: bool = True) -> dict[str, Any]:
    """Return a scores row as :class:`AccountRiskPublic` (drivers raising risk only)."""
    out = _pick(row, _RISK_FIELDS)
    days = out.get("days_to_renewal")
    out["days_to_renewal"] = None if days is None or math.isnan(days) else round(days)
    out["drivers"] = drivers(row.get("drivers"), risers_only=risers_only)
    return out


def detail(row: Mapping[str, Any], history: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Return an account's latest row and history as :class:`AccountDetailPublic`."""
    out = risk_row(row, risers_only=False)
    out["previous_probability"] = row.get("previous_probability")
    out["context"] = drivers(row.get("context"), risers_only=False)
    out["change_drivers"] = [_pick(c, _CHANGE_FIELDS) for c in row.get("change_drivers") or ()]
    for key in ("as_of", "scored_at", "run_id", "churn_version", "clv_version", "previous_as_of"):
        out[key] = row.get(key)
    out["current"] = bool(row.get("current"))
    out["history"] = [_pick(h, _HISTORY_FIELDS) for h in history]
    return out
