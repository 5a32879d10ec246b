"""The sandbox's HTTP face: Garmin's SSO, token and connectapi endpoints as garth 0.8.0 and
DI clients (ha-garmin) use them.

Clients reach it by rewriting `https://<sub>.garmin.com<path>` to `<base_url>/<sub><path>`,
so routes live under `/sso/...`, `/diauth/...` and `/connectapi/...`. A JSON control API under
`/_sandbox/...` scripts accounts and faults when the sandbox runs as its own process.

By Garmin's parts: SSO (`sso_routes.py`), OAuth tokens (`oauth_routes.py`), DI tokens
(`diauth_routes.py`), connectapi
profile and data (`connectapi.py`), the control API (`control.py`); latency and faults
(`interference.py`) and attribution (`handling.py`) are shared. This module adds the two
middlewares (the request record, JSON errors) and assembles the app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from . import connectapi, control, diauth_routes, oauth_routes, sso_routes
from .errors import AccountExists, UnknownAccount, ValidationError
from .handling import (
    ATTRIBUTION,
    CALLER_HEADER,
    SANDBOX_STATE,
    Attribution,
    ConnectionDropped,
    json_error,
    state_of,
)
from .interference import STOPPING
from .issued import ISSUED_VALUE_PATTERN
from .state import RecordedRequest, SandboxState

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- middlewares ---------------------------------------------------------------------------


def _initial_scope(path: str) -> str:
    if path.startswith("/sso/"):
        return "sso"
    if path.startswith("/connectapi/"):
        return "api"
    if path.startswith("/diauth/"):
        return "di_token"
    return "unknown"


@web.middleware
async def record_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every non-control request with its final status, whatever happened.

    Control calls are the test harness talking, not traffic to "Garmin", so they stay out.
    """
    if control.is_control(request.path):
        return await handler(request)
    state = state_of(request)
    attribution = Attribution(_initial_scope(request.path))
    request[ATTRIBUTION] = attribution
    started = state.clock()
    status: int | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except ConnectionDropped:
        return web.Response(status=499)  # never reaches the client: the transport is gone
    finally:
        state.record(_recorded(request, attribution, status, started))


def _recorded(
    request: web.Request, attribution: Attribution, status: int | None, started: float
) -> RecordedRequest:
    logger.debug(
        "sandbox %s %s scope=%s account=%s status=%s",
        request.method,
        request.path,
        attribution.scope,
        attribution.account,
        status,
    )
    return RecordedRequest(
        method=request.method,
        path=request.path,
        scope=attribution.scope,
        account=attribution.account,
        token_account=attribution.token_account,
        caller=request.headers.get(CALLER_HEADER),
        status=status,
        at=started,
        delay_ms=attribution.delay_ms,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a JSON answer (4xx for bad input), never a bare 500 page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        response = json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        if headers:
            response.headers.update(headers)
        return response
    except AccountExists as exc:
        return json_error(409, "conflict", str(exc))
    except ValidationError as exc:
        return json_error(400, "bad_request", str(exc))
    except UnknownAccount as exc:
        return json_error(404, "not_found", f"no account {exc.args[0]!r}")
    except ConnectionDropped:
        raise
    except Exception:
        logger.exception("sandbox handler failed on %s %s", request.method, request.path)
        return json_error(500, "internal_error", "sandbox bug; see the sandbox log")


# --- assembly ------------------------------------------------------------------------------


class RedactIssuedValues(logging.Filter):
    """Masks sandbox-issued values in log records (the message and any string extras).

    Garmin sends the service ticket in a query string, so aiohttp's access log line for
    `preauthorized` would otherwise print it; leak checks must find no secret in any log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "sbx-" in message:
            record.msg = ISSUED_VALUE_PATTERN.sub("sbx-[redacted]", message)
            record.args = ()
        for key, value in list(vars(record).items()):
            if key != "msg" and isinstance(value, str) and "sbx-" in value:
                setattr(record, key, ISSUED_VALUE_PATTERN.sub("sbx-[redacted]", value))
        return True


def _redact_access_log() -> None:
    """Install RedactIssuedValues on aiohttp's access logger, once per process."""
    access = logging.getLogger("aiohttp.access")
    if not any(isinstance(existing, RedactIssuedValues) for existing in access.filters):
        access.addFilter(RedactIssuedValues())


async def _wake_sleepers(app: web.Application) -> None:
    """On shutdown, end every latency/hang sleep so the server can close promptly."""
    app[STOPPING].set()


def create_sandbox_app(state: SandboxState | None = None) -> web.Application:
    """The sandbox as an aiohttp app; its state is reachable as `app[SANDBOX_STATE]`.

    Also masks sandbox-issued values in the process's `aiohttp.access` log (see
    RedactIssuedValues), whatever runner ends up serving the app.
    """
    app = web.Application(middlewares=[record_middleware, error_middleware])
    app[SANDBOX_STATE] = state if state is not None else SandboxState()
    app[STOPPING] = asyncio.Event()
    app.on_shutdown.append(_wake_sleepers)
    _redact_access_log()
    sso_routes.add_routes(app.router)
    oauth_routes.add_routes(app.router)
    diauth_routes.add_routes(app.router)
    connectapi.add_routes(app.router)  # its catch-all comes after the OAuth paths
    control.add_routes(app.router)
    return app
