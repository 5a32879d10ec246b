"""The sandbox's SSO flows as ha-garmin's real DI client walks them: mobile and portal logins,
MFA (right and wrong codes, both verifyCode URLs), blocks, and its strategy chain."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp.test_utils import TestClient
from curl_cffi import requests as cffi_requests
from ha_garmin.auth import IOS_SERVICE_URL, GarminAuth
from ha_garmin.exceptions import (
    GarminAPIError,
    GarminAuthError,
    GarminMFARequired,
    GarminRateLimitError,
)

from service.sandbox import DI_CLIENT_IDS, Fault, SandboxState, load_seed
from tests.support.sandbox import ALICE, ALICE_PASSWORD, MFA_CODE, MONA, MONA_PASSWORD

Http = TestClient[Any, Any]
PORTAL_SERVICE = "https://connect.garmin.com/app"
SEED_FILE = Path(__file__).resolve().parents[2] / "examples" / "sandbox-seed.yaml"


def paths(state: SandboxState, scope: str) -> list[str]:
    return [r.path for r in state.requests if r.scope == scope]


def scopes(state: SandboxState) -> list[str]:
    return [r.scope for r in state.requests]


async def mobile_login(auth: GarminAuth, username: str, password: str) -> Any:
    return await asyncio.to_thread(auth._do_mobile_login, requests.Session(), username, password)


async def test_mobile_login_without_mfa_gets_di_tokens_the_api_accepts(
    ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    result = await mobile_login(ha_auth, ALICE, ALICE_PASSWORD)
    assert result.success
    assert ha_auth.di_token is not None and ha_auth.di_token.count(".") == 2
    assert ha_auth.di_refresh_token is not None
    assert ha_auth.di_refresh_token.startswith("sbx-drt-")
    assert ha_auth.di_client_id == DI_CLIENT_IDS[0]  # read back from the JWT
    assert await asyncio.to_thread(ha_auth._verify_token)
    assert scopes(sbx_state) == ["signin", "login", "di_token", "api"]
    assert sbx_state.requests[0].path == "/sso/mobile/sso/en_US/sign-in"
    assert [r.status for r in sbx_state.requests] == [200, 200, 200, 200]
    alice = sbx_state.get_account(ALICE)
    assert alice is not None and (alice.login_attempts, alice.di_exchanges) == (1, 1)
    assert ha_auth.di_token in sbx_state.issued_secrets()


async def test_full_login_through_curl_cffi_takes_the_first_strategy(
    ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    """login() starts with mobile + curl_cffi (TLS impersonation), which reaches loopback."""
    await asyncio.to_thread(ha_auth.login, ALICE, ALICE_PASSWORD)
    assert ha_auth.is_authenticated
    assert scopes(sbx_state) == ["signin", "login", "di_token", "api"]


async def test_portal_login_gets_tokens_for_the_portal_service(
    ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    session = cffi_requests.Session(impersonate="chrome")
    await asyncio.to_thread(ha_auth._do_portal_web_login, session, ALICE, ALICE_PASSWORD)
    assert ha_auth.is_authenticated
    assert scopes(sbx_state) == ["portal_signin", "portal_login", "di_token"]
    assert sbx_state.requests[1].path == "/sso/portal/api/login"


async def test_wrong_password_stops_the_whole_chain(
    ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    with pytest.raises(GarminAuthError, match="Invalid Username or Password"):
        await asyncio.to_thread(ha_auth.login, ALICE, "wrong")
    assert scopes(sbx_state) == ["signin", "login"]


async def test_mfa_with_the_right_code_on_the_mobile_url(
    ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    with pytest.raises(GarminMFARequired):
        await mobile_login(ha_auth, MONA, MONA_PASSWORD)
    assert ha_auth._mfa_method == "email"
    await asyncio.to_thread(ha_auth._complete_mfa, MFA_CODE)
    assert ha_auth.is_authenticated
    assert paths(sbx_state, "mfa") == ["/sso/mobile/api/mfa/verifyCode"]
    mona = sbx_state.get_account(MONA)
    assert mona is not None and mona.mfa_attempts == 1


@pytest.mark.parametrize("status", [200, 400])
async def test_wrong_mfa_code_then_right_code_on_the_same_challenge(
    status: int, ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    """ha-garmin posts a refused code to the mobile URL and again to the portal one."""
    sbx_state.update_account(MONA, {"mfa_invalid_status": status})
    with pytest.raises(GarminMFARequired):
        await mobile_login(ha_auth, MONA, MONA_PASSWORD)
    with pytest.raises(GarminAuthError, match="MFA verification failed"):
        await asyncio.to_thread(ha_auth._complete_mfa, "000000")
    wrong = [r for r in sbx_state.requests if r.scope in ("mfa", "portal_mfa")]
    assert [(r.path, r.status) for r in wrong] == [
        ("/sso/mobile/api/mfa/verifyCode", status),
        ("/sso/portal/api/mfa/verifyCode", status),
    ]
    await asyncio.to_thread(ha_auth._complete_mfa, MFA_CODE)
    assert ha_auth.is_authenticated
    mona = sbx_state.get_account(MONA)
    assert mona is not None and mona.mfa_attempts == 3


@pytest.mark.parametrize("status", [200, 400])
async def test_wrong_mfa_code_answer_carries_invalid_mfa_code(
    status: int, sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.update_account(MONA, {"mfa_invalid_status": status})
    await sbx_http.get("/sso/portal/sso/en-US/sign-in")
    login = await sbx_http.post(
        "/sso/portal/api/login",
        params={"service": PORTAL_SERVICE},
        json={"username": MONA, "password": MONA_PASSWORD},
    )
    answer = await login.json()
    assert answer["responseStatus"]["type"] == "MFA_REQUIRED"
    assert answer["customerMfaInfo"] == {"mfaLastMethodUsed": "email"}
    wrong = await sbx_http.post(
        "/sso/portal/api/mfa/verifyCode", json={"mfaVerificationCode": "000000"}
    )
    body = await wrong.json()
    assert wrong.status == status
    assert body["responseStatus"]["type"] == "INVALID_MFA_CODE"
    error = {"status-code": "400", "message": "INVALID_MFA_CODE"}
    assert body.get("error") == (None if status == 200 else error)
    right = await sbx_http.post(
        "/sso/mobile/api/mfa/verifyCode", json={"mfaVerificationCode": MFA_CODE}
    )
    assert (await right.json())["responseStatus"]["type"] == "SUCCESSFUL"


async def test_mfa_attempt_limit_drops_the_challenge(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.update_account(MONA, {"mfa_max_attempts": 2, "mfa_invalid_status": 400})
    await sbx_http.get("/sso/mobile/sso/en_US/sign-in")
    await sbx_http.post("/sso/mobile/api/login", json={"username": MONA, "password": MONA_PASSWORD})
    for _ in range(2):
        wrong = await sbx_http.post(
            "/sso/mobile/api/mfa/verifyCode", json={"mfaVerificationCode": "000000"}
        )
        assert (await wrong.json())["responseStatus"]["type"] == "INVALID_MFA_CODE"
    late = await sbx_http.post(
        "/sso/mobile/api/mfa/verifyCode", json={"mfaVerificationCode": MFA_CODE}
    )
    assert late.status == 400
    assert (await late.json())["responseStatus"]["type"] == "INVALID_SESSION"


async def test_public_complete_mfa_forgets_the_challenge_after_a_wrong_code(
    ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    """complete_mfa() clears its MFA state on failure; Garmin's challenge lives on."""
    with pytest.raises(GarminMFARequired):
        await mobile_login(ha_auth, MONA, MONA_PASSWORD)
    session = ha_auth._mfa_session
    with pytest.raises(GarminAuthError):
        await asyncio.to_thread(ha_auth.complete_mfa, "000000")
    assert ha_auth._mfa_session is None and not ha_auth._mfa_pending
    with pytest.raises(GarminAuthError):
        await asyncio.to_thread(ha_auth.complete_mfa, MFA_CODE)
    assert not ha_auth.is_authenticated
    # the same SSO session still redeems the right code
    answer = await asyncio.to_thread(
        session.post,
        f"{ha_auth._sso}/mobile/api/mfa/verifyCode",
        params={"service": IOS_SERVICE_URL},
        json={"mfaVerificationCode": MFA_CODE},
    )
    assert answer.json()["responseStatus"]["type"] == "SUCCESSFUL"


async def test_blocked_mobile_mfa_url_issues_a_ticket_for_the_portal_service(
    ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    """With the mobile verifyCode URL answering 429, ha-garmin's fallback to the portal URL
    gets a ticket for the portal service, which it then exchanges as the iOS service: the
    ticket is burnt on the first try and no client id gets a token."""
    sbx_state.set_fault(MONA, "mfa", Fault(status=429))
    with pytest.raises(GarminMFARequired):
        await mobile_login(ha_auth, MONA, MONA_PASSWORD)
    with pytest.raises(GarminAuthError, match="DI token exchange failed"):
        await asyncio.to_thread(ha_auth._complete_mfa, MFA_CODE)
    assert [r.status for r in sbx_state.requests if r.scope.endswith("mfa")] == [429, 200]
    assert [r.status for r in sbx_state.requests if r.scope == "di_token"] == [400] * 4


async def test_mobile_login_blocks_are_rate_limits_and_cloudflare_is_not(
    ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    sbx_state.set_fault(ALICE, "login", Fault(status=429, retry_after=60, times=1))
    with pytest.raises(GarminRateLimitError, match="Mobile login returned 429"):
        await mobile_login(ha_auth, ALICE, ALICE_PASSWORD)
    in_body = {"error": {"status-code": "429", "message": "Too Many Requests"}}
    sbx_state.set_fault(ALICE, "login", Fault(body=in_body, times=1))
    with pytest.raises(GarminRateLimitError, match="429 in JSON body"):
        await mobile_login(ha_auth, ALICE, ALICE_PASSWORD)
    sbx_state.set_fault(None, "signin", Fault(cloudflare=True, times=1))
    with pytest.raises(GarminAPIError, match="Cloudflare"):
        await mobile_login(ha_auth, ALICE, ALICE_PASSWORD)
    assert [r.status for r in sbx_state.requests] == [200, 429, 200, 200, 403]
    await mobile_login(ha_auth, ALICE, ALICE_PASSWORD)
    assert ha_auth.is_authenticated


async def test_cloudflare_fault_serves_a_challenge_page(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.set_fault(None, "portal_signin", Fault(cloudflare=True))
    page = await sbx_http.get("/sso/portal/sso/en-US/sign-in")
    assert page.status == 403 and page.headers["cf-mitigated"] == "challenge"
    assert "<title>Just a moment...</title>" in await page.text()


async def test_blocked_mobile_flow_makes_login_walk_the_chain_to_the_portal(
    ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    """A 429 on every mobile credential POST costs 4 of them (3 TLS fingerprints and plain
    requests) and a widget attempt before the portal flow's first try succeeds."""
    sbx_state.set_fault(None, "login", Fault(status=429))
    await asyncio.to_thread(ha_auth.login, ALICE, ALICE_PASSWORD)
    assert ha_auth.is_authenticated
    assert paths(sbx_state, "login") == ["/sso/mobile/api/login"] * 4
    assert paths(sbx_state, "portal_login") == ["/sso/portal/api/login"]
    alice = sbx_state.get_account(ALICE)
    assert alice is not None and alice.login_attempts == 5


async def test_blocking_both_flows_costs_ten_credential_posts(
    ha_auth: GarminAuth, sbx_state: SandboxState
) -> None:
    sbx_state.set_fault(None, "login", Fault(status=429))
    sbx_state.set_fault(None, "portal_login", Fault(status=429))
    with pytest.raises(GarminAPIError, match="All login strategies exhausted"):
        await asyncio.to_thread(ha_auth.login, ALICE, ALICE_PASSWORD)
    alice = sbx_state.get_account(ALICE)
    assert alice is not None and alice.login_attempts == 10
    assert not ha_auth.is_authenticated


def test_seed_file_sets_the_di_options() -> None:
    accounts = {a.username: a for a in load_seed(SEED_FILE)}
    assert accounts["alice@example.com"].di_access_lifetime_seconds == 1200
    assert accounts["mona@example.com"].mfa_max_attempts == 5
    assert set(accounts["limited@example.com"].faults) == {"login", "portal_login"}


@pytest.mark.parametrize(
    "changes",
    [
        {"mfa_invalid_status": 302},
        {"mfa_invalid_status": "400"},
        {"mfa_max_attempts": 0},
        {"di_access_lifetime_seconds": -1},
        {"di_reuse_revokes_family": "yes"},
    ],
)
async def test_control_api_validates_the_di_fields(
    changes: dict[str, Any], sbx_http: Http, sbx_state: SandboxState
) -> None:
    response = await sbx_http.patch(f"/_sandbox/accounts/{ALICE}", json=changes)
    assert response.status == 400 and (await response.json())["error"] == "bad_request"
    alice = sbx_state.get_account(ALICE)
    assert alice is not None and (alice.mfa_invalid_status, alice.mfa_max_attempts) == (200, None)


async def test_control_api_installs_body_and_cloudflare_faults(sbx_http: Http) -> None:
    in_body = {"error": {"status-code": "429"}}
    put = await sbx_http.put(f"/_sandbox/accounts/{ALICE}/faults/portal_login",
                             json={"body": in_body, "times": 1})
    assert put.status == 204
    bad = await sbx_http.put("/_sandbox/faults/di_refresh", json={"body": ["not", "an object"]})
    assert bad.status == 400
    view = await (await sbx_http.get(f"/_sandbox/accounts/{ALICE}")).json()
    assert view["faults"]["portal_login"]["body"] == in_body
    assert {"mfa_invalid_status", "mfa_max_attempts", "di_access_lifetime_seconds",
            "di_refresh_lifetime_seconds", "di_reuse_revokes_family", "di_exchanges",
            "di_refresh_attempts", "di_refreshes", "di_refresh_reuses"} <= set(view)
    await sbx_http.get("/sso/portal/sso/en-US/sign-in")
    login = await sbx_http.post("/sso/portal/api/login",
                                json={"username": ALICE, "password": ALICE_PASSWORD})
    assert (login.status, await login.json()) == (200, in_body)
    junk = await sbx_http.post("/diauth/di-oauth2-service/oauth/token", data=b"\xff\xfe",
                               headers={"Authorization": "Basic !!!"})
    assert junk.status == 400
