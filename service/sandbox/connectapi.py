"""Every Bearer call to connectapi: the access token is checked, then the profile paths
(`profile.py`) or the data endpoints (`data.py`) answer for the token's account.

garth's OAuth2 tokens and DI access tokens (JWTs, see `diauth.py`) are both accepted. A DI
token that is expired, expired by control, or unknown is refused with 401 and, as assumed
here from what DI clients report, `{"message": "Token is not active", "error":
"invalid_token"}`; so is any JWT-shaped token the sandbox never issued. A fault can force the
same answer: scope `api`, `{"status": 401, "body": {"message": "Token is not active", ...}}`.

The data endpoints go through the same handler as the profile calls, so token checks,
faults, latency and the record apply to them alike; they also bump the account's
`data_calls` by family.
"""

from __future__ import annotations

from aiohttp import web

from .accounts import Account
from .data import data_answer, data_family
from .diauth import looks_like_jwt
from .errors import SandboxError
from .handling import attribute, connect_error, json_error, state_of
from .interference import interfere
from .profile import profile_answer


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _get_answer(request: web.Request, account: Account, path: str) -> web.Response:
    """A GET for an authorized account: profile paths, then the data endpoints."""
    answer = profile_answer(account, path)
    if answer is not None:
        return web.json_response(answer)
    try:
        data = data_answer(account, path, request.query, state_of(request).utc_now())
    except SandboxError as error:
        return connect_error(error)
    if data is None:
        return json_error(404, "NotFound", f"no sandbox data for GET {path}")
    if data.body is None:
        return web.Response(status=204)  # e.g. a night without HRV, as Garmin answers it
    return web.json_response(data.body)


async def connectapi(request: web.Request) -> web.StreamResponse:
    """Every Bearer API call: 401 unless the access token is live, then the known GET paths."""
    state = state_of(request)
    token = _bearer(request)
    owner = state.access_owner(token)
    path = "/" + request.match_info["tail"]
    attribute(request, "api", owner, owner)
    family = data_family(path) if request.method == "GET" else None
    if family is not None:
        state.count_data(owner, family)
    if (interference := await interfere(request)) is not None:
        return interference
    try:
        account = state.authorize(token)
    except SandboxError as error:
        if state.di.issued(token) or looks_like_jwt(token):
            return web.json_response({"message": "Token is not active", "error": "invalid_token"},
                                     status=401)
        return connect_error(error)
    if request.method != "GET":
        return json_error(404, "NotFound", f"no sandbox data for {request.method} {path}")
    return _get_answer(request, account, path)


def add_routes(router: web.UrlDispatcher) -> None:
    """The catch-all under /connectapi/: add it after the more specific OAuth paths."""
    router.add_route("*", "/connectapi/{tail:.*}", connectapi)
