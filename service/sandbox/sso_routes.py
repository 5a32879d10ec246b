"""Garmin's SSO over HTTP, as garth 0.8.0 walks it: the sign-in page (sets the session
cookie), the credential POST, the MFA code, and the embed page. The model is `sso.py`."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from .errors import SandboxError
from .handling import attribute, body_str, read_json_object, sso_answer, sso_error, state_of
from .interference import interfere

SSO_COOKIE: Final = "SANDBOX_SSO"

_SIGN_IN_HTML: Final = (
    "<!DOCTYPE html><html><head><title>GARMIN Authentication Application</title></head>"
    "<body><div id='sandbox-sign-in'>Garmin sandbox sign-in</div></body></html>"
)
_EMBED_HTML: Final = (
    "<!DOCTYPE html><html><head><title>GARMIN SSO Embed</title></head>"
    "<body>sandbox embed</body></html>"
)


async def sign_in(request: web.Request) -> web.StreamResponse:
    """Step 1: the sign-in page; sets the SSO session cookie later steps require."""
    attribute(request, "signin")
    if (interference := await interfere(request)) is not None:
        return interference
    session_id = state_of(request).open_sso_session()
    response = web.Response(text=_SIGN_IN_HTML, content_type="text/html")
    response.set_cookie(SSO_COOKIE, session_id, path="/", httponly=True, samesite="Lax")
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """Step 2: username + password inside the SSO session; a ticket or MFA_REQUIRED."""
    body = await read_json_object(request)
    username, password = body_str(body, "username"), body_str(body, "password")
    state = state_of(request)
    account = state.get_account(username)
    attribute(request, "login", account.username if account else None)
    if (interference := await interfere(request)) is not None:
        return interference
    try:
        result = state.login(request.cookies.get(SSO_COOKIE), username, password)
    except SandboxError as error:
        return sso_error(error)
    if result.mfa_required:
        return sso_answer("MFA_REQUIRED", customerMfaInfo={"mfaLastMethodUsed": "email"})
    return sso_answer("SUCCESSFUL", serviceTicketId=result.ticket)


async def verify_mfa(request: web.Request) -> web.StreamResponse:
    """Step 3: the MFA code, accepted only with the cookie that got MFA_REQUIRED."""
    body = await read_json_object(request)
    code = body_str(body, "mfaVerificationCode")
    state = state_of(request)
    session_id = request.cookies.get(SSO_COOKIE)
    attribute(request, "mfa", state.mfa_username(session_id))
    if (interference := await interfere(request)) is not None:
        return interference
    try:
        ticket = state.verify_mfa(session_id, code)
    except SandboxError as error:
        return sso_error(error)
    return sso_answer("SUCCESSFUL", serviceTicketId=ticket)


async def embed(request: web.Request) -> web.StreamResponse:
    """Step 4: garth fetches this for a load-balancer cookie; nothing to check."""
    attribute(request, "embed")
    if (interference := await interfere(request)) is not None:
        return interference
    return web.Response(text=_EMBED_HTML, content_type="text/html")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/sso/mobile/sso/en/sign-in", sign_in)
    router.add_post("/sso/mobile/api/login", login)
    router.add_post("/sso/mobile/api/mfa/verifyCode", verify_mfa)
    router.add_get("/sso/portal/sso/embed", embed)
