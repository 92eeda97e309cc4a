"""Errors as ``application/problem+json`` (RFC 9457), for every failure the service has.

Every error response, including a 404 of an unknown route, a 405, a bad query value and
an unexpected exception, has the body ``{"type", "title", "status", "detail",
"instance"}`` plus, where useful, members of its own (``errors`` for bad parameters,
``checks`` for readiness). Bad request values are 400 (not FastAPI's 422), with one
``errors`` item per bad parameter saying where it was and what is wrong with it. A score
store that stops answering gives 503. An unexpected exception is 500 with the body
``"internal error"`` and no traceback; the traceback goes to the server log.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, cast

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from churnrisk.api.methods import allow_header
from churnrisk.errors import ChurnRiskError
from churnrisk.store import StoreError

PROBLEM_JSON = "application/problem+json"
"""Media type of every error body."""

PROBLEM_BASE = "urn:churnrisk:problem:"
"""Prefix of the ``type`` of churnrisk's own problems (``about:blank`` for plain HTTP)."""

_log = logging.getLogger("churnrisk.api")


class ProblemError(ChurnRiskError):
    """An error the service answers with a problem document.

    Parameters
    ----------
    status
        HTTP status code.
    detail
        One sentence for the caller: what was wrong and what to do.
    kind
        Short slug of the problem type (``"unknown-tier"``), giving the ``type``
        ``urn:churnrisk:problem:<kind>``; ``None`` gives ``about:blank``.
    headers
        Extra response headers (e.g. ``WWW-Authenticate``).
    **extra
        Extension members of the problem document (``errors``, ``checks`` ...).
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.headers = dict(headers or {})
        self.extra = extra


def bad_request(
    detail: str, errors: Sequence[Mapping[str, Any]], *, kind: str = "invalid-parameters"
) -> ProblemError:
    """Return the 400 problem of bad request values, one ``errors`` item per parameter."""
    return ProblemError(400, detail, kind=kind, errors=[dict(e) for e in errors])


def never_scored(account_id: str) -> ProblemError:
    """Return the 404 of an account no run has scored (every per-account route says it)."""
    return ProblemError(
        404,
        f"account {account_id!r} has never been scored: check the id, or run"
        " `churnrisk score DATA` if it is new",
        kind="unknown-account",
    )


NO_RUN = "no scoring run yet: run `churnrisk score DATA`"


def no_run() -> ProblemError:
    """Return the 404 of a route that needs a scoring run when the store has none."""
    return ProblemError(404, NO_RUN, kind="no-run")


def param_error(name: str, where: str, message: str) -> dict[str, str]:
    """Return one ``errors`` item: the parameter, where it was, and what is wrong."""
    return {"parameter": name, "in": where, "message": message}


def problem_response(
    request: Request | None,
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Build a problem+json response.

    Parameters
    ----------
    request
        The request (its path becomes ``instance``), if known.
    status, detail, kind, headers, extra
        As for :class:`ProblemError`.
    """
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": f"{PROBLEM_BASE}{kind}" if kind else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path if request is not None else None,
    }
    body.update(extra)
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


# --------------------------------------------------------------------------- handlers

_HTTP_DETAIL = {
    404: "no such resource: see /docs for the routes of this API",
    405: "method not allowed on this resource: see /docs",
}


_BODY_NOT_AN_OBJECT = frozenset({"model_attributes_type", "model_type", "dict_type"})


def _validation_message(error: Mapping[str, Any]) -> str:
    from churnrisk.api.schemas import PATTERN_MESSAGES

    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "json_invalid":
        why = str(ctx.get("error", "")).lower()
        return f"is not valid JSON: {why}" if why else "is not valid JSON"
    if kind in _BODY_NOT_AN_OBJECT and tuple(error.get("loc", ())) == ("body",):
        return "must be a JSON object, sent as application/json"
    if kind == "string_pattern_mismatch" and ctx.get("pattern") in PATTERN_MESSAGES:
        return PATTERN_MESSAGES[ctx["pattern"]]
    msg = str(error.get("msg", "is not valid"))
    return msg[:1].lower() + msg[1:]


def validation_errors(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Turn pydantic/FastAPI validation errors into ``errors`` items.

    Header values are never echoed back (a header may hold a key); query and path values
    are not echoed either, only named. Body that is not JSON at all is named ``body``
    (FastAPI locates it by the character where parsing stopped).
    """
    items: list[dict[str, str]] = []
    for error in raw:
        where, *path = error.get("loc") or ("request",)
        name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        if error.get("type") == "json_invalid" or not name:
            name = str(where)
        items.append(param_error(name, str(where), _validation_message(error)))
    return items


async def _on_validation(request: Request, exc: Exception) -> Response:
    errors = validation_errors(cast(RequestValidationError, exc).errors())
    names = ", ".join(dict.fromkeys(f"{e['parameter']} ({e['message']})" for e in errors))
    return problem_response(
        request, 400, f"invalid request: {names}", kind="invalid-parameters", errors=errors
    )


async def _on_http(request: Request, exc: Exception) -> Response:
    exc = cast(StarletteHTTPException, exc)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail else ""
    if not detail or detail == HTTPStatus(status).phrase:
        detail = _HTTP_DETAIL.get(status, HTTPStatus(status).phrase.lower())
    headers = dict(exc.headers or {})
    if status == 405:  # Starlette names the methods of the path's first route only
        headers["Allow"] = allow_header(request.scope)
    return problem_response(request, status, detail, headers=headers)


async def _on_problem(request: Request, exc: Exception) -> Response:
    exc = cast(ProblemError, exc)
    return problem_response(
        request, exc.status, exc.detail, kind=exc.kind, headers=exc.headers, **exc.extra
    )


def store_unavailable(reason: str | None) -> ProblemError:
    """Return the 503 of a score store that is not usable, saying why in public words.

    ``reason`` is a :attr:`StoreError.reason <churnrisk.store.StoreError.reason>`: it names
    no URL, user, host, database or path. The whole story is in the server log.
    """
    return ProblemError(
        503,
        f"the score store is not usable ({reason or 'not open'}); the server log says why",
        kind="store-unavailable",
    )


async def _on_store(request: Request, exc: Exception) -> Response:
    from churnrisk.store import InvalidQueryError, NoRunError, StaleCursorError

    if isinstance(exc, NoRunError):
        return problem_response(request, 404, str(exc), kind="no-run")
    if isinstance(exc, StaleCursorError):
        return problem_response(request, 409, str(exc), kind="stale-cursor")
    if isinstance(exc, InvalidQueryError):
        return problem_response(request, 400, str(exc), kind="invalid-parameters")
    error = cast(StoreError, exc)
    request.app.state.service.holder.failed(error)
    return await _on_problem(request, store_unavailable(error.reason))


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware re-raises after this response, so the server logs
    # the traceback once; the caller sees no detail of it.
    return problem_response(request, 500, "internal error", kind="internal")


def install_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(StoreError, _on_store)
    app.add_exception_handler(Exception, _on_unexpected)


# --------------------------------------------------------------------------- OpenAPI


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI ``responses`` entries of error codes, as problem documents."""
    from churnrisk.api.schemas import Problem

    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        # served as application/problem+json: the app's OpenAPI hook renames the media type
        out[code] = {"model": Problem, "description": HTTPStatus(code).phrase}
    return out


def log_unexpected(message: str) -> None:
    """Log an unexpected failure with its traceback (call inside ``except``)."""
    _log.exception(message)
