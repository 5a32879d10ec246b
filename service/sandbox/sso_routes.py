"""Garmin's SSO over HTTP, as garth 0.8.0 and DI clients (ha-garmin) walk it: the sign-in
page (sets the session cookie), the credential POST, the MFA code, and garth's embed page.
The model is `sso.py`.

Two flows share the accounts, the session cookie and its MFA challenge: the mobile app's
(`/sso/mobile/...`: garth's `en` sign-in page and the iOS app's `en_US` one) and the web
portal's (`/sso/portal/...`). Each flow has its own fault scopes (`signin`/`login`/`mfa` and
`portal_signin`/`portal_login`/`portal_mfa`), as each is its own rate-limit bucket at Garmin.
The `service` query parameter of the credential or MFA POST names the service the ticket is
issued for.

A wrong MFA code is answered with the account's `mfa_invalid_status` and, as assumed here
(Garmin's answer is undocumented), the body
`{"responseStatus": {"type": "INVALID_MFA_CODE", "message": "..."}}`, plus
`"error": {"status-code": "<status>", "message": "INVALID_MFA_CODE"}` when the status is
not 200.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _sign_in(scope: str) -> Handler:
    async def sign_in(request: web.Request) -> web.StreamResponse:
        """Step 1: the sign-in page; sets the SSO session cookie later steps require."""
        attribute(request, scope)
        if (interference := await interfere(request)) is not None:
            return interference
        session_id = state_of(request).open_sso_session()
        response = web.Response(text=_SIGN_IN_HTML, content_type="text/html")
        response.set_cookie(SSO_COOKIE, session_id, path="/", httponly=True, samesite="Lax")
        return response

    return sign_in


def _login(scope: str) -> Handler:
    async def login(request: web.Request) -> web.StreamResponse:
        """Step 2: username + password inside the SSO session; a ticket or MFA_REQUIRED."""
        body = await read_json_object(request)
        username, password = body_str(body, "username"), body_str(body, "password")
        state = state_of(request)
        account = state.get_account(username)
        attribute(request, scope, account.username if account else None)
        if (interference := await interfere(request)) is not None:
            return interference
        session_id = request.cookies.get(SSO_COOKIE)
        service = request.query.get("service")
        try:
            result = state.login(session_id, username, password, service)
        except SandboxError as error:
            return sso_error(error)
        if result.mfa_required:
            return sso_answer("MFA_REQUIRED", customerMfaInfo={"mfaLastMethodUsed": "email"})
        return sso_answer("SUCCESSFUL", serviceTicketId=result.ticket)

    return login


def _mfa_refusal(error: SandboxError) -> web.Response:
    if error.kind != "INVALID_MFA_CODE" or error.status == 200:
        return sso_error(error)
    detail = {"status-code": str(error.status), "message": error.kind}
    return sso_answer(error.kind, error.message, status=error.status, error=detail)


def _verify_mfa(scope: str) -> Handler:
    async def verify_mfa(request: web.Request) -> web.StreamResponse:
        """Step 3: the MFA code, accepted only with the cookie that got MFA_REQUIRED."""
        body = await read_json_object(request)
        code = body_str(body, "mfaVerificationCode")
        state = state_of(request)
        session_id = request.cookies.get(SSO_COOKIE)
        attribute(request, scope, state.mfa_username(session_id))
        if (interference := await interfere(request)) is not None:
            return interference
        try:
            ticket = state.verify_mfa(session_id, code, request.query.get("service"))
        except SandboxError as error:
            return _mfa_refusal(error)
        return sso_answer("SUCCESSFUL", serviceTicketId=ticket)

    return verify_mfa


async def embed(request: web.Request) -> web.StreamResponse:
    """Step 4: garth fetches this for a load-balancer cookie; nothing to check."""
    attribute(request, "embed")
    if (interference := await interfere(request)) is not None:
        return interference
    return web.Response(text=_EMBED_HTML, content_type="text/html")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/sso/mobile/sso/en/sign-in", _sign_in("signin"))
    router.add_get("/sso/mobile/sso/en_US/sign-in", _sign_in("signin"))
    router.add_post("/sso/mobile/api/login", _login("login"))
    router.add_post("/sso/mobile/api/mfa/verifyCode", _verify_mfa("mfa"))
    router.add_get("/sso/portal/sso/en-US/sign-in", _sign_in("portal_signin"))
    router.add_post("/sso/portal/api/login", _login("portal_login"))
    router.add_post("/sso/portal/api/mfa/verifyCode", _verify_mfa("portal_mfa"))
    router.add_get("/sso/portal/sso/embed", embed)
