"""The API's one middleware: request id, metrics, problem rendering, database, caller auth.

Every request passes through `edge_middleware`, built once per app from its configuration.
It used to be five middlewares (request id, metrics, problems, database, auth); each layer
cost a coroutine, a `functools.partial` and a frame per request, which on the cheapest
route (a cached `GET .../status`) was about a tenth of the whole request. One function does
the same steps in the same order:

1. request id: honour a caller's `X-Request-Id` (or make one) and tag log lines with it;
2. metrics: count and time the request with the status the caller finally gets (499 when
   it hung up first);
3. problems: whatever a step below raises becomes problem+json (`error_response`);
4. database: bind the app's Tortoise context to the request's task;
5. auth: every /api/v1 route needs an API key and a user id, except the operator routes
   under `/api/v1/webhooks/` (the key alone; `/metrics` too when `metrics.require_auth` is
   set); probes and the OpenAPI document stay open;
6. content encoding: a body in any encoding but identity is refused before it is read.

Whatever can be worked out before the first request (the encoded API keys, the metrics
switch) is, so the per-request work is header lookups, one regex and the key comparison.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import os
import re
import time

import asyncpg
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware
from multidict import istr
from tortoise.exceptions import DBConnectionError

from service import db, logs
from service.config import Config
from service.errors import (
    PROBLEM_CONTENT_TYPE,
    BadRequest,
    DatabaseUnavailable,
    HttpError,
    InternalError,
    InvalidUserId,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    Unauthorized,
    UnsupportedContentEncoding,
)
from service.keys import DB_CONTEXT
from service.metrics import CLIENT_CLOSED_STATUS, Metrics

log = logging.getLogger(__name__)

# istr: multidict compares a pre-folded key without case-folding it again on every lookup
USER_ID_HEADER = istr("X-User-Id")
AUTHORIZATION_HEADER = istr("Authorization")
CONTENT_ENCODING_HEADER = istr("Content-Encoding")
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")
USER_ID = web.RequestKey("user_id", str)
API_PREFIX = "/api/"
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/api/v1/openapi.json"})
# operator routes: they act on no single user, so the API key alone (every key holder is an
# operator today; see docs/webhooks.md)
OPERATOR_PREFIX = "/api/v1/webhooks/"
METRICS_PATH = "/metrics"
NO_KEY_CONFIGURED = ("No API key is configured on the server, so every call is refused: its "
                     "operator sets auth.api_keys (GARMIN_SYNC_AUTH_API_KEYS).")


REQUEST_ID_HEADER = istr("X-Request-Id")
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """32 hex digits, unique across replicas (a random prefix per process, then a counter):
    as unique as a UUID for correlating logs, without a system call per request."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


def request_id_of(request: web.Request) -> str:
    """The caller's X-Request-Id when it is safe to echo and log, else a new one."""
    incoming = request.headers.get(REQUEST_ID_HEADER)
    if incoming and REQUEST_ID_PATTERN.fullmatch(incoming):
        return incoming
    return new_request_id()


def encode_keys(keys: tuple[str, ...]) -> tuple[bytes, ...]:
    """The configured keys as bytes, once at startup rather than once per request."""
    return tuple(key.encode() for key in keys)


def _key_matches(presented: str, keys: tuple[bytes, ...]) -> bool:
    """Constant-time comparison against every key (no early exit on the first match)."""
    given = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key)
    return matched


def check_api_key(request: web.Request, keys: tuple[bytes, ...]) -> None:
    """The caller presents one of `keys` (`auth.api_keys`) as a bearer token, or gets a 401."""
    if not keys:
        raise Unauthorized(NO_KEY_CONFIGURED)
    header = request.headers.get(AUTHORIZATION_HEADER, "")
    scheme, _, presented = header.partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise Unauthorized("Send 'Authorization: Bearer <API key>'.")
    if not _key_matches(presented, keys):
        raise Unauthorized("The API key is not valid.")


def authenticate(request: web.Request, keys: tuple[bytes, ...]) -> str:
    """Check the bearer key and return the caller's user id (the only row it may touch)."""
    check_api_key(request, keys)
    # exactly one: with two, whichever a proxy appended or a caller injected would pick the user
    values = request.headers.getall(USER_ID_HEADER, ())
    user_id = values[0] if len(values) == 1 else ""
    if not USER_ID_PATTERN.fullmatch(user_id):
        raise InvalidUserId(
            f"Send one {USER_ID_HEADER} header of 1 to 64 characters of A-Z a-z 0-9 . _ : @ -.")
    return user_id


def check_content_encoding(request: web.Request) -> None:
    """Bodies come as they are (identity) or not at all.

    Request bodies are small JSON objects: compressing them saves nothing worth a
    decompressor that an 8 KiB upload can make inflate to gigabytes. The server hands bodies
    over undecoded (`SERVE_OPTIONS` in service.app), so every encoding, br and zstd
    included, reaches this check and is refused here as problem+json before anything reads
    the body.
    """
    for value in request.headers.getall(CONTENT_ENCODING_HEADER, ()):
        for coding in value.split(","):
            if coding.strip().lower() not in ("", "identity"):
                raise UnsupportedContentEncoding()


# --- problems ---------------------------------------------------------------------------

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


def client_gone(request: web.Request) -> bool:
    """The caller closed its connection: nothing this request answers can reach it."""
    transport = request.transport
    return transport is None or transport.is_closing()


def problem_response(problem: Problem, instance: str | None = None) -> web.Response:
    return web.Response(
        status=problem.status,
        text=json.dumps(problem.body(instance)),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=problem.headers,
    )


def _from_http_exception(exc: web.HTTPException) -> Problem:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(exc.allowed_methods)
    if exc.status == NotFound.status:
        return NotFound()
    if exc.status == MethodNotAllowed.status:
        return MethodNotAllowed()
    if exc.status == PayloadTooLarge.status:
        return PayloadTooLarge()
    return HttpError(exc.status, exc.reason)


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """The problem+json answer to an exception a handler (or the auth step) raised.

    The one place errors become answers: `edge_middleware` calls it for every exception.
    A `Problem` is answered as it says; anything else that escapes a handler is logged with
    its traceback and answered as a generic 500, so no stack trace or exception text ever
    reaches a caller. An `HTTPException` below 400 (a redirect) is not an error: it is
    re-raised for aiohttp to send as it is.
    """
    if isinstance(exc, Problem):
        return problem_response(exc, request.path)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        return problem_response(_from_http_exception(exc), request.path)
    if isinstance(exc, (HttpProcessingError, web.RequestPayloadError)):
        # the body broke the protocol (bad chunked framing, say): the caller's fault; aiohttp's
        # text can quote the input, so the detail stays ours
        return problem_response(BadRequest("The request body is malformed."), request.path)
    if isinstance(exc, ConnectionError) and client_gone(request):
        # the caller hung up (mid-body, say): its problem, not ours, and nobody reads the
        # answer; a driver's ConnectionResetError leaves the caller's connection open
        log.debug("client closed the connection on %s %s", request.method, request.path)
        return web.Response(status=CLIENT_CLOSED_STATUS)
    if isinstance(exc, DATABASE_UNAVAILABLE):
        log.error("database unavailable on %s %s: %s", request.method, request.path,
                  type(exc).__name__)
        return problem_response(DatabaseUnavailable(), request.path)
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return problem_response(InternalError(), request.path)


# --- the middleware ---------------------------------------------------------------------


def edge_middleware(config: Config, metrics: Metrics | None) -> Middleware:
    """The app's only middleware (see the module docstring); `metrics` None counts nothing.

    `config` is frozen, so the keys and switches read from it here hold for the app's life.
    """
    keys = encode_keys(config.auth.api_keys)
    metrics_need_key = config.metrics.require_auth
    record = metrics.http_answered if metrics is not None else None
    clock = time.perf_counter

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        rid = request_id_of(request)
        logs.request_id.set(rid)
        started = clock()
        status = 500
        try:
            try:
                ctx = request.app.get(DB_CONTEXT)
                if ctx is not None:
                    db.activate(ctx)
                path = request.path
                if path.startswith(OPERATOR_PREFIX):
                    check_api_key(request, keys)
                elif path.startswith(API_PREFIX) and path not in PUBLIC_PATHS:
                    user_id = authenticate(request, keys)
                    request[USER_ID] = user_id
                    logs.user_id.set(user_id)
                elif path == METRICS_PATH and metrics_need_key:
                    check_api_key(request, keys)
                if CONTENT_ENCODING_HEADER in request.headers:
                    check_content_encoding(request)
                response = await handler(request)
            except Exception as exc:  # the one place errors become answers
                response = error_response(request, exc)
            status = response.status
        except web.HTTPException as exc:  # below 400: a redirect, passed on to aiohttp
            status = exc.status
            raise
        except asyncio.CancelledError:  # the caller went away
            status = CLIENT_CLOSED_STATUS
            raise
        finally:
            if record is not None:
                record(request, status, clock() - started)
        response.headers[REQUEST_ID_HEADER] = rid
        return response

    return edge
