"""What every sandbox handler shares: the state key, request attribution, Garmin-shaped
error bodies and careful body parsing (bad input is a JSON 400, never a 500).

Each Garmin handler follows the same shape, so faults and the record behave alike
everywhere: attribute the request to an account (without consuming anything), bump the
account's counter, apply latency and any fault (`interference.py`), then run the real logic
from the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs

from aiohttp import web

from .errors import SandboxError
from .state import SandboxState

SANDBOX_STATE: Final = web.AppKey("sandbox_state", SandboxState)
CALLER_HEADER: Final = "X-Sandbox-Caller"


@dataclass
class Attribution:
    """Who a request is about; filled in by the handler, written to the record afterwards."""

    scope: str
    account: str | None = None
    token_account: str | None = None
    delay_ms: int = 0


ATTRIBUTION: Final = web.RequestKey("sandbox_attribution", Attribution)


class ConnectionDropped(Exception):
    """Raised after aborting the transport: there is no response to send."""


def state_of(request: web.Request) -> SandboxState:
    return request.app[SANDBOX_STATE]


def attribute(
    request: web.Request,
    scope: str,
    account: str | None = None,
    token_account: str | None = None,
) -> None:
    """Tag the request for the record and bump the account's counter for this scope."""
    attribution = request[ATTRIBUTION]
    attribution.scope = scope
    attribution.account = account
    attribution.token_account = token_account
    state_of(request).count(account, scope)


# --- answers -----------------------------------------------------------------------------


def json_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


def bad_request(message: str) -> web.HTTPBadRequest:
    """A 400 with a JSON body (the error middleware leaves JSON errors alone)."""
    body = json.dumps({"error": "bad_request", "message": message})
    return web.HTTPBadRequest(text=body, content_type="application/json")


def sso_answer(kind: str, message: str = "", status: int = 200, **extra: Any) -> web.Response:
    """Garmin's SSO JSON shape: everything hangs off `responseStatus.type`."""
    body: dict[str, Any] = {"responseStatus": {"type": kind, "message": message}, **extra}
    return web.json_response(body, status=status)


def sso_error(error: SandboxError) -> web.Response:
    return sso_answer(error.kind, error.message, status=error.status)


def connect_error(error: SandboxError) -> web.Response:
    return json_error(error.status, error.kind, error.message)


# --- bodies ------------------------------------------------------------------------------


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong."""
    raw = await request.read()
    try:
        data = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad_request("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("body must be a JSON object")
    return data


async def form_fields(request: web.Request) -> dict[str, str]:
    """A urlencoded body as a dict; parsed by hand so odd content types cannot crash it."""
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request("form body is not UTF-8") from None
    return {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}


def body_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise bad_request(f"{key} must be a string")
    return value
