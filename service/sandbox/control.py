"""The control API under `/_sandbox/...`: the test harness scripting the sandbox when it runs
as its own process (accounts, faults, settings, the request record, issued secrets, reset).

It is not Garmin traffic: the record middleware leaves these calls out of the record.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from .accounts import Account
from .faults import Fault, validate_scope
from .handling import bad_request, read_json_object, state_of

CONTROL_PREFIX: Final = "/_sandbox"


def is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


async def create_account(request: web.Request) -> web.StreamResponse:
    """POST /_sandbox/accounts: add an account (no secrets are issued)."""
    account = state_of(request).add_account(Account.from_dict(await read_json_object(request)))
    return web.json_response(account.to_dict(), status=201)


async def list_accounts(request: web.Request) -> web.StreamResponse:
    """GET /_sandbox/accounts: every account with its counters."""
    return web.json_response([a.to_dict() for a in state_of(request).accounts.values()])


async def get_account(request: web.Request) -> web.StreamResponse:
    """GET /_sandbox/accounts/{username}: one account with its counters."""
    account = state_of(request).require_account(request.match_info["username"])
    return web.json_response(account.to_dict())


async def patch_account(request: web.Request) -> web.StreamResponse:
    """PATCH /_sandbox/accounts/{username}: change password, MFA, lifetimes, latency..."""
    changes = await read_json_object(request)
    account = state_of(request).update_account(request.match_info["username"], changes)
    return web.json_response(account.to_dict())


def _fault_target(request: web.Request) -> tuple[str | None, str]:
    username = request.match_info.get("username")
    if username is not None:
        state_of(request).require_account(username)
    return username, validate_scope(request.match_info["scope"])


async def put_fault(request: web.Request) -> web.StreamResponse:
    """PUT .../faults/{scope}: install a fault (account-wide, or global without account)."""
    username, scope = _fault_target(request)
    fault = Fault.from_dict(await read_json_object(request))
    state_of(request).set_fault(username, scope, fault)
    return web.Response(status=204)


async def delete_fault(request: web.Request) -> web.StreamResponse:
    """DELETE .../faults/{scope}: remove the fault."""
    username, scope = _fault_target(request)
    state_of(request).clear_fault(username, scope)
    return web.Response(status=204)


async def revoke(request: web.Request) -> web.StreamResponse:
    """POST /_sandbox/accounts/{username}/revoke: a password change; every OAuth1 token and
    DI refresh token of the account stops refreshing. `revoked` counts both kinds."""
    count = state_of(request).revoke_oauth1(request.match_info["username"])
    return web.json_response({"revoked": count})


async def expire_access_tokens(request: web.Request) -> web.StreamResponse:
    """POST .../expire-access-tokens: Garmin drops the OAuth2 and DI access tokens; the
    refresh credentials (OAuth1, DI refresh tokens) stay good. `expired` counts both kinds."""
    count = state_of(request).expire_access_tokens(request.match_info["username"])
    return web.json_response({"expired": count})


async def get_settings(request: web.Request) -> web.StreamResponse:
    """GET /_sandbox/settings: the sandbox-wide settings."""
    return web.json_response(state_of(request).settings())


async def patch_settings(request: web.Request) -> web.StreamResponse:
    """PATCH /_sandbox/settings: `latency_ms` for requests attributed to no account."""
    changes = await read_json_object(request)
    return web.json_response(state_of(request).update_settings(changes))


async def list_requests(request: web.Request) -> web.StreamResponse:
    """GET /_sandbox/requests: the request record, oldest first."""
    return web.json_response([r.to_dict() for r in state_of(request).requests])


async def clear_requests(request: web.Request) -> web.StreamResponse:
    """DELETE /_sandbox/requests: forget the record."""
    state_of(request).clear_requests()
    return web.Response(status=204)


async def issued_secrets(request: web.Request) -> web.StreamResponse:
    """GET /_sandbox/issued-secrets: every credential issued, for leak checks out of process."""
    return web.json_response(state_of(request).issued_secrets())


async def reset(request: web.Request) -> web.StreamResponse:
    """POST /_sandbox/reset: drop everything and reload the seed (`{"keep_seed": false}`: empty)."""
    options = await read_json_object(request) if request.can_read_body else {}
    if set(options) - {"keep_seed"}:
        raise bad_request("reset accepts only keep_seed")
    keep_seed = options.get("keep_seed", True)
    if not isinstance(keep_seed, bool):
        raise bad_request("keep_seed must be true or false")
    state_of(request).reset(keep_seed=keep_seed)
    return web.Response(status=204)


def add_routes(router: web.UrlDispatcher) -> None:
    account = CONTROL_PREFIX + "/accounts/{username}"
    router.add_post(CONTROL_PREFIX + "/accounts", create_account)
    router.add_get(CONTROL_PREFIX + "/accounts", list_accounts)
    router.add_get(account, get_account)
    router.add_patch(account, patch_account)
    router.add_put(account + "/faults/{scope}", put_fault)
    router.add_delete(account + "/faults/{scope}", delete_fault)
    router.add_post(account + "/revoke", revoke)
    router.add_post(account + "/expire-access-tokens", expire_access_tokens)
    router.add_put(CONTROL_PREFIX + "/faults/{scope}", put_fault)
    router.add_delete(CONTROL_PREFIX + "/faults/{scope}", delete_fault)
    router.add_get(CONTROL_PREFIX + "/settings", get_settings)
    router.add_patch(CONTROL_PREFIX + "/settings", patch_settings)
    router.add_get(CONTROL_PREFIX + "/requests", list_requests)
    router.add_delete(CONTROL_PREFIX + "/requests", clear_requests)
    router.add_get(CONTROL_PREFIX + "/issued-secrets", issued_secrets)
    router.add_post(CONTROL_PREFIX + "/reset", reset)
