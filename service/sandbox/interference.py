"""Latency and faults over HTTP: sleep, then drop the connection or answer an error page,
truncated JSON or a Garmin-shaped error, as the request's `Fault` (see `faults.py`) says.

Sleeps end early when the app shuts down, so a hang never blocks a test's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from http import HTTPStatus
from typing import Final, NoReturn

from aiohttp import web

from .faults import Fault
from .handling import ATTRIBUTION, ConnectionDropped, json_error, sso_answer, state_of

logger = logging.getLogger(__name__)

STOPPING: Final = web.AppKey("sandbox_stopping", asyncio.Event)
SSO_SCOPES: Final = frozenset(
    {"signin", "login", "mfa", "portal_signin", "portal_login", "portal_mfa"}
)
DI_SCOPES: Final = frozenset({"di_token", "di_refresh"})
_CLOUDFLARE_HTML: Final = (
    "<!DOCTYPE html><html lang='en-US'><head><title>Just a moment...</title></head>"
    "<body><div id='challenge-running'>Checking if the site connection is secure</div>"
    "<div class='cf-error-details'>sso.garmin.com needs to review the security of your"
    " connection before proceeding.</div><div>Performance &amp; security by Cloudflare</div>"
    "</body></html>"
)


async def pause(app: web.Application, seconds: float) -> None:
    """Sleep, but wake up early when the app shuts down, so hangs never block a test's exit."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await app[STOPPING].wait()


def _drop_connection(request: web.Request) -> NoReturn:
    """Close the socket without answering: the client sees a connection error."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise ConnectionDropped


def _fault_headers(fault: Fault) -> dict[str, str]:
    return {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}


def _html_page(status: int, fault: Fault) -> web.Response:
    reason = _reason(status)
    text = (
        f"<!DOCTYPE html><html><head><title>{status} {reason}</title></head>"
        f"<body><h1>{status} {reason}</h1><p>Sandbox error page.</p></body></html>"
    )
    return web.Response(
        status=status, text=text, content_type="text/html", headers=_fault_headers(fault)
    )


def _cloudflare_page(status: int, fault: Fault) -> web.Response:
    """Cloudflare's bot challenge, as Garmin's SSO serves it to clients it distrusts."""
    headers = {**_fault_headers(fault), "cf-mitigated": "challenge", "Server": "cloudflare"}
    return web.Response(status=status, text=_CLOUDFLARE_HTML, content_type="text/html",
                        headers=headers)


def _truncated_json(status: int, fault: Fault) -> web.Response:
    text = '{"responseStatus": {"type": "SUCCESSFUL", "mess'
    return web.Response(
        status=status, text=text, content_type="application/json", headers=_fault_headers(fault)
    )


def _status_answer(scope: str, status: int, fault: Fault) -> web.Response:
    """A JSON error shaped like the real endpoint's (SSO `responseStatus`, or connectapi)."""
    reason = _reason(status)
    kind = reason.upper().replace(" ", "_").replace("-", "_")
    if scope in SSO_SCOPES:
        response = sso_answer(kind, f"{status} {reason}", status=status)
    elif scope in DI_SCOPES:  # an OAuth 2.0 token endpoint's error shape (RFC 6749 5.2)
        body = {"error": kind.lower(), "error_description": f"{status} {reason}"}
        response = web.json_response(body, status=status)
    else:
        response = json_error(status, kind, f"{status} {reason}")
    response.headers.update(_fault_headers(fault))
    return response


def _reason(status: int) -> str:
    with contextlib.suppress(ValueError):
        return HTTPStatus(status).phrase
    return "Error"


async def _perform(request: web.Request, scope: str, fault: Fault) -> web.Response | None:
    """Carry out a fault; None means "now answer normally" (a hang-only fault)."""
    if fault.hang_seconds:
        await pause(request.app, fault.hang_seconds)
    if fault.reset:
        _drop_connection(request)
    if fault.cloudflare:
        return _cloudflare_page(fault.status if fault.status is not None else 403, fault)
    status = fault.status if fault.status is not None else 200
    if fault.body is not None:
        return web.json_response(fault.body, status=status, headers=_fault_headers(fault))
    if fault.html:
        return _html_page(status, fault)
    if fault.truncated:
        return _truncated_json(status, fault)
    if fault.status is not None:
        return _status_answer(scope, fault.status, fault)
    return None


async def interfere(request: web.Request) -> web.Response | None:
    """Apply the attributed account's latency (or the sandbox-wide one for a request
    attributed to no account), then a matching fault, if any."""
    attribution = request[ATTRIBUTION]
    state = state_of(request)
    fault = state.take_fault(attribution.scope, attribution.account)
    attribution.delay_ms = state.latency_for(attribution.account)
    await pause(request.app, attribution.delay_ms / 1000)
    if fault is None:
        return None
    logger.debug("sandbox fault on %s for %s", attribution.scope, attribution.account)
    return await _perform(request, attribution.scope, fault)
