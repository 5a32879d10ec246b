"""Garmin's DI token endpoint over HTTP: `POST /diauth/di-oauth2-service/oauth/token`.

Form-encoded, with HTTP Basic carrying the DI client id and an empty secret, as the Connect
apps send it. Two grants: the service ticket one (`service_ticket`, `service_url`,
`client_id`) and `refresh_token` (`refresh_token`, `client_id`). The model is `diauth.py`.

Answers, as assumed here from what DI clients parse (Garmin does not document them):
success `{"access_token": <JWT>, "refresh_token", "token_type": "bearer", "expires_in",
"refresh_token_expires_in", "scope", "jti"}`; refusals in the OAuth 2.0 shape (RFC 6749
5.2) `{"error": ..., "error_description": ...}`: 401 `invalid_client` (no or unknown client
id, or a form `client_id` other than the Basic one), 400 `invalid_request` (a field
missing), 400 `unsupported_grant_type`, 400 `invalid_grant` (ticket or refresh token
unknown, used, expired, revoked, for another service or client).
Fault scopes: `di_token` (the ticket grant) and `di_refresh` (the refresh grant).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from aiohttp import web

from .diauth import DI_CLIENT_IDS, DI_SCOPES, SERVICE_TICKET_GRANT, DiTokens
from .errors import SandboxError
from .handling import attribute, form_fields, state_of
from .interference import interfere

TOKEN_PATH: Final = "/diauth/di-oauth2-service/oauth/token"  # noqa: S105 - a URL path


def _basic_client_id(request: web.Request) -> str | None:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, _secret = decoded.partition(":")
    return client_id or None


def _client_id(request: web.Request, form: dict[str, str]) -> str:
    """The DI client id of the Basic header, checked against the known ones and the form."""
    client_id = _basic_client_id(request)
    if client_id is None or client_id not in DI_CLIENT_IDS:
        raise SandboxError(401, "invalid_client", "client authentication failed")
    if form.get("client_id", client_id) != client_id:
        raise SandboxError(401, "invalid_client", "client_id does not match the credentials")
    return client_id


def _field(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise SandboxError(400, "invalid_request", f"{name} is required")
    return value


def _answer(tokens: DiTokens) -> dict[str, Any]:
    access, refresh = tokens.access, tokens.refresh
    return {
        "access_token": access.token,
        "refresh_token": refresh.value,
        "token_type": "bearer",
        "expires_in": int(access.expires_at - access.issued_at),
        "refresh_token_expires_in": int(refresh.expires_at - refresh.issued_at),
        "scope": " ".join(DI_SCOPES),
        "jti": access.jti,
    }


def _refusal(error: SandboxError) -> web.Response:
    body = {"error": error.kind, "error_description": error.message}
    challenge = 'Basic realm="di-oauth2-service"'
    headers = {"WWW-Authenticate": challenge} if error.status == 401 else None
    return web.json_response(body, status=error.status, headers=headers)


async def token(request: web.Request) -> web.StreamResponse:
    """Both grants; the request is attributed to the ticket's or refresh token's owner."""
    state = state_of(request)
    form = await form_fields(request)
    grant_type = form.get("grant_type")
    if grant_type == "refresh_token":
        owner = state.di.refresh_owner(form.get("refresh_token"))
        attribute(request, "di_refresh", owner, owner)
    else:
        attribute(request, "di_token", state.ticket_owner(form.get("service_ticket")))
    if (interference := await interfere(request)) is not None:
        return interference
    try:
        client_id = _client_id(request, form)
        if grant_type == SERVICE_TICKET_GRANT:
            ticket = state.sso.ticket(_field(form, "service_ticket"))
            tokens = state.di.exchange_ticket(ticket, _field(form, "service_url"), client_id)
        elif grant_type == "refresh_token":
            tokens = state.di.refresh(_field(form, "refresh_token"), client_id)
        else:
            raise SandboxError(400, "unsupported_grant_type", "grant_type is not supported")
    except SandboxError as error:
        return _refusal(error)
    return web.json_response(_answer(tokens))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post(TOKEN_PATH, token)
