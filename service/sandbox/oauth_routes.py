"""Garmin's OAuth endpoints over HTTP: `preauthorized` (ticket -> OAuth1 pair) and
`exchange` (OAuth1-signed -> OAuth2 access token). The model is `oauth.py`.

Signed requests must carry the sandbox consumer key and some signature; the HMAC itself is
not verified.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final
from urllib.parse import unquote, urlencode

from aiohttp import web

from .errors import SandboxError
from .handling import attribute, connect_error, form_fields, state_of
from .interference import interfere
from .oauth import REFRESH_TOKEN_LIFETIME_SECONDS
from .state import SandboxState

SANDBOX_CONSUMER_KEY: Final = "sandbox-consumer-key"
SANDBOX_CONSUMER_SECRET: Final = "sandbox-consumer-secret"  # noqa: S105 - public test value

_OAUTH_PARAM: Final = re.compile(r'([A-Za-z_]+)="([^"]*)"')


def _oauth_params(request: web.Request) -> dict[str, str]:
    """The parameters of an `Authorization: OAuth k="v", ...` header ({} if absent)."""
    header = request.headers.get("Authorization", "")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "oauth":
        return {}
    return {key: unquote(value) for key, value in _OAUTH_PARAM.findall(rest)}


def _check_consumer(oauth: dict[str, str]) -> None:
    """Our consumer key and some signature must be present (the HMAC is not verified)."""
    if oauth.get("oauth_consumer_key") != SANDBOX_CONSUMER_KEY or not oauth.get("oauth_signature"):
        raise SandboxError(401, "INVALID_SIGNATURE", "OAuth consumer or signature invalid")


def _mfa_expiry(state: SandboxState) -> str:
    moment = dt.datetime.fromtimestamp(state.clock() + 365 * 86_400, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.000")


async def preauthorized(request: web.Request) -> web.StreamResponse:
    """Step 5: a signed request trades the service ticket for an OAuth1 token pair."""
    state = state_of(request)
    oauth = _oauth_params(request)
    ticket = request.query.get("ticket")
    attribute(
        request,
        "preauthorized",
        state.ticket_owner(ticket),
        state.oauth1_owner(oauth.get("oauth_token")),
    )
    if (interference := await interfere(request)) is not None:
        return interference
    try:
        _check_consumer(oauth)
        grant = state.redeem_ticket(ticket)
    except SandboxError as error:
        return connect_error(error)
    fields = {"oauth_token": grant.token, "oauth_token_secret": grant.secret}
    if grant.mfa_token is not None:
        fields["mfa_token"] = grant.mfa_token
        fields["mfa_expiration_timestamp"] = _mfa_expiry(state)
    return web.Response(text=urlencode(fields), content_type="text/plain")


async def exchange(request: web.Request) -> web.StreamResponse:
    """Step 6 and every refresh: a request signed with the OAuth1 token gets a new OAuth2."""
    state = state_of(request)
    oauth = _oauth_params(request)
    owner = state.oauth1_owner(oauth.get("oauth_token"))
    attribute(request, "exchange", owner, owner)
    if (interference := await interfere(request)) is not None:
        return interference
    form = await form_fields(request)
    try:
        _check_consumer(oauth)
        grant = state.exchange(oauth.get("oauth_token"), refresh="audience" not in form)
    except SandboxError as error:
        return connect_error(error)
    lifetime = int(grant.expires_at - grant.issued_at)
    return web.json_response(
        {
            "scope": "CONNECT_READ CONNECT_WRITE",
            "jti": grant.jti,
            "token_type": "Bearer",
            "access_token": grant.token,
            "refresh_token": grant.refresh_token,
            "expires_in": lifetime,
            "refresh_token_expires_in": REFRESH_TOKEN_LIFETIME_SECONDS,
        }
    )


def add_routes(router: web.UrlDispatcher) -> None:
    """The OAuth paths; they sit under /connectapi/, so add them before its catch-all."""
    router.add_get("/connectapi/oauth-service/oauth/preauthorized", preauthorized)
    router.add_post("/connectapi/oauth-service/oauth/exchange/user/2.0", exchange)
