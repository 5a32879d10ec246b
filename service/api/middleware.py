"""Middlewares: database context per request, and the API's own caller authentication."""

from __future__ import annotations

import hmac
import itertools
import os
import re

from aiohttp import web

from service import db, logs
from service.keys import CONFIG, DB_CONTEXT
from service.problems import Handler, Problem

USER_ID_HEADER = "X-User-Id"
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@-]{1,64}$")
USER_ID = web.RequestKey("user_id", str)
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/api/v1/openapi.json"})
METRICS_PATH = "/metrics"


REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    """32 hex digits, unique across replicas (a random prefix per process, then a counter):
    as unique as a UUID for correlating logs, without a system call per request."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Honour a caller's X-Request-Id (or make one), tag every log line with it, return it."""
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    rid = incoming if incoming and REQUEST_ID_PATTERN.fullmatch(incoming) else new_request_id()
    logs.request_id.set(rid)
    response = await handler(request)
    response.headers[REQUEST_ID_HEADER] = rid
    return response


@web.middleware
async def database_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind this app's Tortoise context to the request's task."""
    ctx = request.app.get(DB_CONTEXT)
    if ctx is not None:
        db.activate(ctx)
    return await handler(request)


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", "Unauthorized", detail,
                   headers={"WWW-Authenticate": 'Bearer realm="garmin-sync"'})


def _key_matches(presented: str, keys: tuple[str, ...]) -> bool:
    """Constant-time comparison against every key (no early exit on the first match)."""
    given = presented.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode())
    return matched


def check_api_key(request: web.Request) -> None:
    """The caller presents one of `auth.api_keys` as a bearer token, or gets a 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    keys = request.app[CONFIG].auth.api_keys
    if scheme.lower() != "bearer" or not presented.strip():
        raise _unauthorized("Send 'Authorization: Bearer <API key>'.")
    if not _key_matches(presented.strip(), keys):
        raise _unauthorized("The API key is not valid.")


def authenticate(request: web.Request) -> str:
    """Check the bearer key and return the caller's user id (the only row it may touch)."""
    check_api_key(request)
    # exactly one: with two, whichever a proxy appended or a caller injected would pick the user
    values = request.headers.getall(USER_ID_HEADER, [])
    user_id = values[0] if len(values) == 1 else ""
    if not USER_ID_PATTERN.fullmatch(user_id):
        raise Problem(
            400, "invalid-user-id", "Invalid user id",
            f"Send one {USER_ID_HEADER} header of 1 to 64 characters of A-Z a-z 0-9 . _ : @ -.",
        )
    return user_id


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every /api/v1 route needs an API key and a user id; probes and the spec stay open.

    `/metrics` needs the key (but no user id) when `metrics.require_auth` is set.
    """
    if request.path.startswith("/api/") and request.path not in PUBLIC_PATHS:
        request[USER_ID] = authenticate(request)
        logs.user_id.set(request[USER_ID])
    elif request.path == METRICS_PATH and request.app[CONFIG].metrics.require_auth:
        check_api_key(request)
    return await handler(request)
