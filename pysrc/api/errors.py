"""The uniform error envelope and the exception handlers that produce it.

Every error the API returns, whatever raised it (authentication, validation, a backend refusal,
an unknown route, the rate limiter, a bug), has the same body::

    {"error": {"code": "validation_error", "message": "...", "field": "qty", "trace_id": "..."}}

``field`` is present only when one input is to blame; ``trace_id`` is the request's (also in
the ``X-Trace-Id`` header) so a user can quote it and an operator can find every log line of
that request. Validation errors add ``details``: every problem found, not only the first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from pysrc.api.backend import BackendError
from pysrc.api.shapes import dumps
from pysrc.obs.log import current_trace_id, new_trace_id

JSON = "application/json"

_STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    """The body of every error (OpenAPI documentation of the envelope)."""

    code: str
    message: str
    field: str | None = None
    trace_id: str
    details: list[dict[str, str]] | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "missing, invalid or expired token"},
    422: {"model": ErrorEnvelope, "description": "a value was refused; `field` names it"},
    429: {"model": ErrorEnvelope, "description": "rate limited; see Retry-After"},
}
"""Added to every ``/api`` route's OpenAPI description."""


class ApiError(Exception):
    """Raised by the routes themselves (authentication, checks the models cannot express)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _STATUS_CODES.get(status, "error")
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def envelope(
    code: str,
    message: str,
    *,
    field: str | None = None,
    trace_id: str | None = None,
    details: Sequence[Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        err["field"] = field
    err["trace_id"] = trace_id or current_trace_id() or new_trace_id()
    if details:
        err["details"] = [dict(d) for d in details]
    return {"error": err}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    details: Sequence[Mapping[str, str]] | None = None,
) -> Response:
    body = envelope(code, message, field=field, details=details)
    return Response(dumps(body), status_code=status, media_type=JSON, headers=dict(headers or {}))


def _field_of(loc: Sequence[Any]) -> str:
    """``("body", "qty")`` -> ``"qty"``; ``("query", "limit")`` -> ``"limit"``; list indices as
    ``[i]``; a whole-body problem (bad JSON, not an object) -> ``"body"``."""
    parts = list(loc)
    where = str(parts.pop(0)) if parts and parts[0] in ("body", "query", "path", "header", "cookie") else "body"
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or where


def _message(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "field required"
    if kind == "json_invalid":
        return "the body is not valid JSON"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def validation_problems(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    out = []
    for err in errors:
        kind = str(err.get("type", ""))
        field = "body" if kind == "json_invalid" else _field_of(err.get("loc", ()))
        out.append({"field": field, "message": _message(err)})
    return out


async def _on_validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = validation_problems(exc.errors())
    first = problems[0] if problems else {"field": "body", "message": "invalid request"}
    return error_response(
        422,
        "validation_error",
        f"{first['field']}: {first['message']}",
        field=first["field"],
        details=problems,
    )


async def _on_http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) else _STATUS_CODES.get(status, "error")
    if status == 404 and message == "Not Found":
        message = "no such route"
    return error_response(status, _STATUS_CODES.get(status, "error"), message, headers=exc.headers)


async def _on_api(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, field=exc.field, headers=exc.headers)


async def _on_backend(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, BackendError)
    return error_response(exc.status, exc.code, exc.message, field=exc.field)


def install_error_handlers(app: FastAPI) -> None:
    """Route every known error type to the envelope. Unexpected exceptions are caught by the
    request middleware (:mod:`pysrc.api.middleware`), which logs them and answers a 500
    envelope carrying the trace id and nothing else."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(ApiError, _on_api)
    app.add_exception_handler(BackendError, _on_backend)


__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "ErrorDetail",
    "ErrorEnvelope",
    "envelope",
    "error_response",
    "install_error_handlers",
    "validation_problems",
]
