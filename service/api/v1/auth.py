"""`/api/v1/garmin/session`: connect, finish MFA, check and disconnect a Garmin session.

Thin handlers: parse, call one `SessionService` method, shape the response.
"""

from __future__ import annotations

import json
import weakref
from datetime import datetime
from typing import Any

from aiohttp import web

from service.api.middleware import USER_ID
from service.api.parsing import StringField, parse_body, parse_bool_query
from service.keys import SESSIONS
from service.sessions.status import StatusView

LOGIN_FIELDS = (
    StringField("username", max_length=254, description="Garmin Connect username (e-mail)."),
    StringField("password", max_length=256, description="Never stored, logged or echoed."),
)
MFA_FIELDS = (
    StringField("mfa_code", min_length=4, max_length=10, pattern="[0-9]+",
                description="The code Garmin sent to the user."),
)

routes = web.RouteTableDef()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def status_body(view: StatusView) -> dict[str, Any]:
    return {
        "status": view.status,
        "checked": view.checked,
        "last_validated": _iso(view.last_validated),
        "connected_at": _iso(view.connected_at),
        "mfa_pending": view.mfa_pending,
        "mfa_expires_at": _iso(view.mfa_expires_at),
        "reason": view.reason,
        "engine": view.engine,
        "sync": {kind: {name: _iso(value) if isinstance(value, datetime) else value
                        for name, value in fields.items()}
                 for kind, fields in view.sync.items()},
    }


# A cached answer is sent many times over: its JSON is rendered once per view. Views are
# immutable; the memo holds them weakly, so it lives exactly as long as the status cache's.
_RENDERED: weakref.WeakKeyDictionary[StatusView, bytes] = weakref.WeakKeyDictionary()


def status_json(view: StatusView) -> bytes:
    body = _RENDERED.get(view)
    if body is None:
        body = _RENDERED[view] = json.dumps(status_body(view)).encode()
    return body


@routes.post("/api/v1/garmin/session/login")
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LOGIN_FIELDS)
    outcome = await request.app[SESSIONS].login(
        request[USER_ID], body["username"], body["password"]
    )
    if outcome.status == "SUCCESS":
        return web.json_response({"status": "SUCCESS"})
    return web.json_response({
        "status": "MFA_REQUIRED",
        "mfa_method": outcome.mfa_method,
        "expires_at": _iso(outcome.expires_at),
    })


@routes.post("/api/v1/garmin/session/mfa")
async def submit_mfa(request: web.Request) -> web.Response:
    body = await parse_body(request, MFA_FIELDS)
    await request.app[SESSIONS].submit_mfa(request[USER_ID], body["mfa_code"])
    return web.json_response({"status": "SUCCESS"})


@routes.get("/api/v1/garmin/session/status")
async def session_status(request: web.Request) -> web.Response:
    # health probes poll without a query string: skip building the query mapping for them
    refresh = parse_bool_query(request, "refresh") if request.query_string else False
    view = await request.app[SESSIONS].status(request[USER_ID], refresh=refresh)
    return web.Response(body=status_json(view), content_type="application/json",
                        charset="utf-8")


@routes.delete("/api/v1/garmin/session")
async def disconnect(request: web.Request) -> web.Response:
    await request.app[SESSIONS].disconnect(request[USER_ID])
    return web.Response(status=204)
