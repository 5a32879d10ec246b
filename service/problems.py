"""RFC 9457 problem details: the one shape every error of the API takes.

Domain code raises `Problem` (or a subclass); `error_response`, called by the API's one
middleware, renders it. Anything else that escapes a handler is logged with its traceback
and answered as a generic 500 problem, so no stack trace or exception text ever reaches a
caller.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
from aiohttp import web
from tortoise.exceptions import DBConnectionError

log = logging.getLogger(__name__)

# Losing the database (a dropped or refused connection, a stall) is a 503, not a bug (500).
# asyncpg raises InternalClientError ("cannot switch to state N; another operation (2) is in
# progress") when a backend dies between its FATAL message and the socket closing
# (MagicStack/asyncpg#784, #1069); QueryCanceledError is `database.statement_timeout_seconds`.
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    DBConnectionError, OSError, TimeoutError, asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError, asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.InternalClientError,
    asyncpg.exceptions.QueryCanceledError,
)

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://garmin-sync.dev/problems/"


class Problem(Exception):
    """An error the API reports on purpose: a stable `type` slug, a title and a detail."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


def problem_response(problem: Problem, instance: str | None = None) -> web.Response:
    return web.Response(
        status=problem.status,
        text=json.dumps(problem.body(instance)),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


def bad_request(detail: str, **extra: Any) -> Problem:
    return Problem(400, "bad-request", "Bad request", detail, **extra)


def validation_error(detail: str, errors: list[dict[str, str]]) -> Problem:
    return Problem(400, "validation-error", "Invalid request body", detail, errors=errors)


_HTTP_SLUGS = {
    404: ("not-found", "Not found", "No such resource."),
    405: ("method-not-allowed", "Method not allowed", "This resource does not take that method."),
    413: ("payload-too-large", "Payload too large", "The request body is too large."),
}


def _from_http_exception(exc: web.HTTPException) -> Problem:
    slug, title, detail = _HTTP_SLUGS.get(
        exc.status, ("http-error", exc.reason or "Error", exc.reason or "Request failed.")
    )
    headers = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
    return Problem(exc.status, slug, title, detail, headers=headers)


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The problem+json answer to an exception a handler (or the auth step) raised.

    The one place errors become answers; `api.middleware.edge_middleware` calls it for every
    exception. An `HTTPException` below 400 (a redirect) is not an error: it is re-raised
    for aiohttp to send as it is.
    """
    if isinstance(exc, Problem):
        return problem_response(exc, request.path)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return problem_response(_from_http_exception(exc), request.path)
    if isinstance(exc, DATABASE_UNAVAILABLE):
        log.error("database unavailable on %s %s: %s", request.method, request.path,
                  type(exc).__name__)
        return problem_response(
            Problem(503, "database-unavailable", "Database unavailable",
                    "The service cannot reach its database right now; retry shortly.",
                    headers={"Retry-After": "5"}),
            request.path,
        )
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return problem_response(
        Problem(500, "internal-error", "Internal error",
                "The service failed to handle this request; it has been logged."),
        request.path,
    )
