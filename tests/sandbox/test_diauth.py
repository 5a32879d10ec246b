"""The sandbox's DI token endpoint and DI bearer tokens on connectapi, driven by ha-garmin's
real token exchange and refresh and by raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from ha_garmin.auth import IOS_SERVICE_URL, GarminAuth
from ha_garmin.exceptions import GarminAuthError, GarminRateLimitError

from service.sandbox import (
    DI_CLIENT_IDS,
    SANDBOX_DI_SIGNING_KEY,
    SERVICE_TICKET_GRANT,
    Fault,
    SandboxState,
)
from tests.support.sandbox import ALICE, ALICE_PASSWORD, BOB, FakeClock

Http = TestClient[Any, Any]
TOKEN = "/diauth/di-oauth2-service/oauth/token"
PROFILE = "/connectapi/userprofile-service/socialProfile"
NOT_ACTIVE = {"message": "Token is not active", "error": "invalid_token"}


def basic(client_id: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:".encode()).decode()}


def jwt_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


async def ticket(http: Http, username: str = ALICE, password: str = ALICE_PASSWORD,
                 service: str = IOS_SERVICE_URL) -> str:
    """A fresh service ticket from a raw mobile login (its own cookie jar)."""
    http.session.cookie_jar.clear()
    await http.get("/sso/mobile/sso/en_US/sign-in")
    answer = await http.post("/sso/mobile/api/login", params={"service": service},
                             json={"username": username, "password": password})
    return str((await answer.json())["serviceTicketId"])


async def grant(http: Http, form: dict[str, str], client_id: str = DI_CLIENT_IDS[0],
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    response = await http.post(TOKEN, data=form, headers=basic(client_id) if headers is None
                               else headers)
    return response.status, await response.json()


def ticket_form(value: str, service: str = IOS_SERVICE_URL,
                client_id: str = DI_CLIENT_IDS[0]) -> dict[str, str]:
    return {"grant_type": SERVICE_TICKET_GRANT, "service_ticket": value,
            "service_url": service, "client_id": client_id}


def refresh_form(value: str, client_id: str = DI_CLIENT_IDS[0]) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": value, "client_id": client_id}


async def di_login(auth: GarminAuth, http: Http) -> None:
    await asyncio.to_thread(auth._exchange_service_ticket, await ticket(http), IOS_SERVICE_URL)


async def profile_status(http: Http, token: str | None) -> tuple[int, Any]:
    response = await http.get(PROFILE, headers={"Authorization": f"Bearer {token}"})
    return response.status, await response.json()


# --- the service ticket grant ----------------------------------------------------------------


async def test_ticket_grant_answers_a_signed_jwt_and_a_refresh_token(
    sbx_http: Http, clock: FakeClock
) -> None:
    status, body = await grant(sbx_http, ticket_form(await ticket(sbx_http)))
    assert status == 200
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in",
                         "refresh_token_expires_in", "scope", "jti"}
    assert (body["token_type"], body["expires_in"]) == ("bearer", 3600)
    assert body["refresh_token_expires_in"] == 7_776_000
    header, payload = jwt_part(body["access_token"], 0), jwt_part(body["access_token"], 1)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert payload["client_id"] == DI_CLIENT_IDS[0] and payload["jti"] == body["jti"]
    assert (payload["iat"], payload["exp"]) == (int(clock.now), int(clock.now + 3600))
    profile = await profile_status(sbx_http, body["access_token"])
    assert profile[0] == 200 and profile[1]["userName"] == ALICE
    assert payload["sub"] == payload["garmin_guid"] == profile[1]["garminGUID"]
    assert payload["user_id"] == profile[1]["profileId"]
    signed, _, signature = body["access_token"].rpartition(".")
    digest = hmac.new(SANDBOX_DI_SIGNING_KEY, signed.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == signature


@pytest.mark.parametrize("client_id", DI_CLIENT_IDS)
async def test_every_known_client_id_gets_tokens(sbx_http: Http, client_id: str) -> None:
    form = ticket_form(await ticket(sbx_http), client_id=client_id)
    status, body = await grant(sbx_http, form, client_id)
    assert status == 200 and jwt_part(body["access_token"], 1)["client_id"] == client_id


async def test_ticket_is_single_use_fresh_and_bound_to_its_service(
    sbx_http: Http, clock: FakeClock
) -> None:
    value = await ticket(sbx_http)
    assert (await grant(sbx_http, ticket_form(value)))[0] == 200
    used = {"error": "invalid_grant", "error_description": "service ticket unknown or already used"}
    assert await grant(sbx_http, ticket_form(value)) == (400, used)
    other = await ticket(sbx_http)
    status, body = await grant(sbx_http, ticket_form(other, "https://connect.garmin.com/app"))
    assert (status, body["error"]) == (400, "invalid_grant")
    assert (await grant(sbx_http, ticket_form(other)))[0] == 400  # validated once, then burnt
    late = await ticket(sbx_http)
    clock.advance(301)
    assert (await grant(sbx_http, ticket_form(late)))[1]["error_description"] == (
        "service ticket expired")


async def test_client_authentication_and_bad_requests(sbx_http: Http) -> None:
    value = await ticket(sbx_http)
    no_basic = await sbx_http.post(TOKEN, data=ticket_form(value))
    assert no_basic.status == 401 and "Basic" in no_basic.headers["WWW-Authenticate"]
    assert (await no_basic.json())["error"] == "invalid_client"
    assert (await grant(sbx_http, ticket_form(value), "SOME_OTHER_CLIENT"))[0] == 401
    mismatch = ticket_form(value, client_id=DI_CLIENT_IDS[1])
    assert (await grant(sbx_http, mismatch))[1]["error"] == "invalid_client"
    assert (await grant(sbx_http, {"grant_type": "password"}))[1]["error"] == (
        "unsupported_grant_type")
    missing = {"grant_type": SERVICE_TICKET_GRANT, "service_ticket": value}
    assert await grant(sbx_http, missing) == (
        400, {"error": "invalid_request", "error_description": "service_url is required"})
    assert (await grant(sbx_http, ticket_form(value)))[0] == 200  # refusals left it unburnt


# --- refresh rotation ------------------------------------------------------------------------


async def test_refresh_rotates_and_a_reused_token_is_refused_and_counted(
    ha_auth: GarminAuth, sbx_http: Http, sbx_state: SandboxState
) -> None:
    await di_login(ha_auth, sbx_http)
    first_access, first_refresh = ha_auth.di_token, ha_auth.di_refresh_token
    assert first_refresh is not None
    await asyncio.to_thread(ha_auth._refresh_di_token)
    assert ha_auth.di_refresh_token not in (None, first_refresh)
    assert ha_auth.di_token != first_access
    assert ha_auth.di_client_id == DI_CLIENT_IDS[0]
    assert (await profile_status(sbx_http, first_access))[0] == 200  # live until it expires
    assert await grant(sbx_http, refresh_form(first_refresh)) == (
        400, {"error": "invalid_grant", "error_description": "refresh token already used"})
    view = await (await sbx_http.get(f"/_sandbox/accounts/{ALICE}")).json()
    assert (view["di_refresh_reuses"], view["di_refreshes"], view["di_refresh_attempts"]) == (
        1, 1, 2)
    await asyncio.to_thread(ha_auth._refresh_di_token)  # the rotated one still works
    alice = sbx_state.get_account(ALICE)
    assert alice is not None and (alice.di_refreshes, alice.di_refresh_reuses) == (2, 1)
    assert sbx_state.di.live_refresh_tokens(ALICE) == 1


async def test_reuse_can_revoke_the_whole_family(
    ha_auth: GarminAuth, sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.update_account(ALICE, {"di_reuse_revokes_family": True})
    await di_login(ha_auth, sbx_http)
    stolen = ha_auth.di_refresh_token
    assert stolen is not None
    await asyncio.to_thread(ha_auth._refresh_di_token)
    other = await grant(sbx_http, ticket_form(await ticket(sbx_http)))  # a second login
    assert (await grant(sbx_http, refresh_form(stolen)))[0] == 400
    with pytest.raises(GarminAuthError, match="HTTP 400"):
        await asyncio.to_thread(ha_auth._refresh_di_token)
    assert (await grant(sbx_http, refresh_form(other[1]["refresh_token"])))[0] == 200


async def test_refresh_token_is_bound_to_its_client_and_account(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    _, body = await grant(sbx_http, ticket_form(await ticket(sbx_http)))
    form = refresh_form(body["refresh_token"], DI_CLIENT_IDS[3])
    assert (await grant(sbx_http, form, DI_CLIENT_IDS[3]))[1]["error_description"] == (
        "refresh token was issued to another client")
    assert (await grant(sbx_http, refresh_form("sbx-drt-" + "0" * 32)))[0] == 400
    _, again = await grant(sbx_http, refresh_form(body["refresh_token"]))
    assert jwt_part(again["access_token"], 1)["sub"] == jwt_part(body["access_token"], 1)["sub"]
    assert sbx_state.requests[-1].account == ALICE


async def test_revoke_stops_di_refreshes_until_the_next_login(
    ha_auth: GarminAuth, sbx_http: Http
) -> None:
    await di_login(ha_auth, sbx_http)
    revoked = await sbx_http.post(f"/_sandbox/accounts/{ALICE}/revoke")
    assert await revoked.json() == {"revoked": 1}
    with pytest.raises(GarminAuthError, match="HTTP 400"):
        await asyncio.to_thread(ha_auth._refresh_di_token)
    await di_login(ha_auth, sbx_http)
    await asyncio.to_thread(ha_auth._refresh_di_token)


# --- DI tokens on connectapi ------------------------------------------------------------------


async def test_expired_di_token_is_not_active_until_a_refresh(
    ha_auth: GarminAuth, sbx_http: Http, sbx_state: SandboxState, clock: FakeClock
) -> None:
    sbx_state.update_account(ALICE, {"di_access_lifetime_seconds": 60})
    await di_login(ha_auth, sbx_http)
    assert await asyncio.to_thread(ha_auth._verify_token)
    clock.advance(60 + sbx_state.access_token_grace_seconds + 1)
    assert await profile_status(sbx_http, ha_auth.di_token) == (401, NOT_ACTIVE)
    assert not await asyncio.to_thread(ha_auth._verify_token)
    await asyncio.to_thread(ha_auth._refresh_di_token)
    assert (await profile_status(sbx_http, ha_auth.di_token))[0] == 200


async def test_expire_access_tokens_control_call_covers_di_tokens(
    ha_auth: GarminAuth, sbx_http: Http
) -> None:
    await di_login(ha_auth, sbx_http)
    expired = await sbx_http.post(f"/_sandbox/accounts/{ALICE}/expire-access-tokens")
    assert await expired.json() == {"expired": 1}
    assert await profile_status(sbx_http, ha_auth.di_token) == (401, NOT_ACTIVE)
    await asyncio.to_thread(ha_auth._refresh_di_token)
    assert await asyncio.to_thread(ha_auth._verify_token)


async def test_unknown_tokens_and_a_forced_fault_answer_401(
    ha_auth: GarminAuth, sbx_http: Http, sbx_state: SandboxState
) -> None:
    _, forged = await grant(sbx_http, ticket_form(await ticket(sbx_http, BOB, "bob-pw")))
    header, _, signature = forged["access_token"].split(".")
    tampered = f"{header}.{base64.urlsafe_b64encode(b'{}').decode().rstrip('=')}.{signature}"
    assert await profile_status(sbx_http, tampered) == (401, NOT_ACTIVE)
    assert (await profile_status(sbx_http, "sbx-at-unknown"))[1]["error"] == "INVALID_TOKEN"
    await di_login(ha_auth, sbx_http)
    sbx_state.set_fault(ALICE, "api", Fault(status=401, body=NOT_ACTIVE, times=1))
    assert not await asyncio.to_thread(ha_auth._verify_token)
    assert await asyncio.to_thread(ha_auth._verify_token)


# --- faults on the token endpoint ------------------------------------------------------------


async def test_rate_limited_exchange_leaves_the_ticket_for_a_retry(
    ha_auth: GarminAuth, sbx_http: Http, sbx_state: SandboxState
) -> None:
    value = await ticket(sbx_http)
    sbx_state.set_fault(ALICE, "di_token", Fault(status=429, retry_after=30, times=1))
    with pytest.raises(GarminRateLimitError):
        await asyncio.to_thread(ha_auth._exchange_service_ticket, value, IOS_SERVICE_URL)
    fault_answer = await grant(sbx_http, ticket_form("ST-unknown"))  # no fault left
    assert fault_answer[0] == 400
    await asyncio.to_thread(ha_auth._exchange_service_ticket, value, IOS_SERVICE_URL)
    assert ha_auth.is_authenticated


async def test_unavailable_exchange_makes_ha_garmin_try_the_next_client_id(
    ha_auth: GarminAuth, sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.set_fault(None, "di_token", Fault(status=503, times=1))
    await di_login(ha_auth, sbx_http)
    assert ha_auth.di_client_id == DI_CLIENT_IDS[1]
    assert [r.status for r in sbx_state.requests if r.scope == "di_token"] == [503, 200]


async def test_rate_limit_in_the_body_shape(sbx_http: Http, sbx_state: SandboxState) -> None:
    sbx_state.set_fault(ALICE, "di_token", Fault(status=429, retry_after=30))
    response = await sbx_http.post(TOKEN, data=ticket_form(await ticket(sbx_http)),
                                   headers=basic(DI_CLIENT_IDS[0]))
    assert response.status == 429 and response.headers["Retry-After"] == "30"
    assert await response.json() == {"error": "too_many_requests",
                                     "error_description": "429 Too Many Requests"}


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(status=429, retry_after=5, times=1), GarminRateLimitError),
        (Fault(status=503, times=1), GarminAuthError),
        (Fault(status=400, body={"error": "invalid_grant", "error_description": "x"}, times=1),
         GarminAuthError),
    ],
    ids=["429", "503", "invalid_grant"],
)
async def test_refresh_faults_leave_the_refresh_token_usable(
    fault: Fault, error: type[Exception], ha_auth: GarminAuth, sbx_http: Http,
    sbx_state: SandboxState,
) -> None:
    await di_login(ha_auth, sbx_http)
    before = ha_auth.di_refresh_token
    sbx_state.set_fault(ALICE, "di_refresh", fault)
    with pytest.raises(error):
        await asyncio.to_thread(ha_auth._refresh_di_token)
    assert ha_auth.di_refresh_token == before
    await asyncio.to_thread(ha_auth._refresh_di_token)
    alice = sbx_state.get_account(ALICE)
    assert alice is not None and (alice.di_refresh_attempts, alice.di_refresh_reuses) == (2, 0)
