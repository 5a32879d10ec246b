"""The sandbox driven by garth's real login/refresh code and by raw HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from garth.auth_tokens import OAuth1Token, OAuth2Token
from garth.exc import GarthException, GarthHTTPError
from garth.users import UserProfile, UserSettings

from service.sandbox import (
    SANDBOX_CONSUMER_KEY,
    Account,
    Fault,
    SandboxError,
    SandboxState,
    ValidationError,
    load_seed,
)
from tests.support.aliases import Http
from tests.support.routing import route, sandbox_client
from tests.support.sandbox import (
    ALICE,
    ALICE_PASSWORD,
    BOB,
    BOB_PASSWORD,
    MFA_CODE,
    MONA,
    MONA_PASSWORD,
    FakeClock,
)

SEED_FILE = Path(__file__).resolve().parents[2] / "examples" / "sandbox-seed.yaml"
PROFILE = "/userprofile-service/socialProfile"
PREAUTHORIZED = "/connectapi/oauth-service/oauth/preauthorized"
GOOD_OAUTH = f'OAuth oauth_consumer_key="{SANDBOX_CONSUMER_KEY}", oauth_signature="c2ln%3D"'


# --- helpers ---------------------------------------------------------------------------------


async def garth_login(url: str, username: str, password: str, caller: str = "u1") -> Any:
    """A routed garth client after a full login (no MFA expected)."""
    client = sandbox_client(url, caller)
    await asyncio.to_thread(client.login, username, password, return_on_mfa=True)
    return client


async def api_get(client: Any, path: str = PROFILE) -> Any:
    """garth's connectapi (which refreshes when needed), with a fresh headers dict."""
    return await asyncio.to_thread(client.connectapi, path, headers={})


def issue_access_token(state: SandboxState, username: str, password: str) -> str:
    """A live access token straight from the state, for raw-HTTP API tests."""
    session_id = state.open_sso_session()
    ticket = state.login(session_id, username, password).ticket
    grant = state.redeem_ticket(ticket)
    return state.exchange(grant.token, refresh=False).token


async def raw_ticket(http: Http, username: str, password: str) -> str:
    """Sign-in and login over HTTP; the service ticket."""
    assert (await http.get("/sso/mobile/sso/en/sign-in")).status == 200
    response = await http.post(
        "/sso/mobile/api/login", json={"username": username, "password": password}
    )
    body = await response.json()
    assert body["responseStatus"]["type"] == "SUCCESSFUL"
    return str(body["serviceTicketId"])


def status_of(error: GarthHTTPError) -> int:
    return int(error.error.response.status_code)


# --- garth login flow ------------------------------------------------------------------------


async def test_plain_login_returns_oauth1_and_oauth2_tokens(
    sbx_state: SandboxState, sbx_url: str
) -> None:
    client = sandbox_client(sbx_url, "user-1")
    oauth1, oauth2 = await asyncio.to_thread(
        client.login, ALICE, ALICE_PASSWORD, return_on_mfa=True
    )
    assert isinstance(oauth1, OAuth1Token) and isinstance(oauth2, OAuth2Token)
    assert oauth1.oauth_token.startswith("sbx-o1-") and oauth1.mfa_token is None
    assert oauth2.access_token.startswith("sbx-at-") and oauth2.expires_in == 3600
    issued = set(sbx_state.issued_secrets())
    assert {oauth1.oauth_token, oauth1.oauth_token_secret} <= issued
    assert {oauth2.access_token, oauth2.refresh_token} <= issued
    assert [r.scope for r in sbx_state.requests] == [
        "signin",
        "login",
        "embed",
        "preauthorized",
        "exchange",
    ]
    assert {r.status for r in sbx_state.requests} == {200}
    alice = sbx_state.get_account(ALICE)
    assert alice is not None
    assert (alice.login_attempts, alice.exchanges, alice.refreshes) == (1, 1, 0)


@pytest.mark.parametrize(
    ("username", "password"), [(ALICE, "wrong"), ("nobody@example.com", ALICE_PASSWORD)]
)
async def test_wrong_password_raises_http_401(
    sbx_state: SandboxState, sbx_url: str, username: str, password: str
) -> None:
    client = sandbox_client(sbx_url)
    with pytest.raises(GarthHTTPError) as caught:
        await asyncio.to_thread(client.login, username, password, return_on_mfa=True)
    assert status_of(caught.value) == 401
    assert caught.value.error.response.json()["responseStatus"]["type"] == (
        "INVALID_USERNAME_PASSWORD"
    )
    assert sbx_state.issued_secrets() == []


async def test_mfa_required_then_right_code_returns_tokens(
    sbx_state: SandboxState, sbx_url: str
) -> None:
    client = sandbox_client(sbx_url)
    result = await asyncio.to_thread(client.login, MONA, MONA_PASSWORD, return_on_mfa=True)
    assert result[0] == "needs_mfa" and result[1]["mfa_method"] == "email"
    oauth1, oauth2 = await asyncio.to_thread(client.resume_login, result[1], MFA_CODE)
    assert oauth1.mfa_token is not None and oauth1.mfa_token.startswith("sbx-mfa-")
    assert oauth1.mfa_expiration_timestamp is not None
    assert oauth2.access_token.startswith("sbx-at-")
    mona = sbx_state.get_account(MONA)
    assert mona is not None and mona.mfa_attempts == 1


async def test_wrong_mfa_code_raises_and_challenge_still_accepts_right_code(
    sbx_state: SandboxState, sbx_url: str
) -> None:
    client = sandbox_client(sbx_url)
    _, pending = await asyncio.to_thread(client.login, MONA, MONA_PASSWORD, return_on_mfa=True)
    with pytest.raises(GarthException, match="INVALID_MFA_CODE"):
        await asyncio.to_thread(client.resume_login, pending, "000000")
    oauth1, _ = await asyncio.to_thread(client.resume_login, pending, MFA_CODE)
    assert oauth1.oauth_token.startswith("sbx-o1-")
    mona = sbx_state.get_account(MONA)
    assert mona is not None and mona.mfa_attempts == 2


async def test_mfa_verify_with_fresh_cookie_jar_is_refused(sbx_url: str) -> None:
    client = sandbox_client(sbx_url)
    _, pending = await asyncio.to_thread(client.login, MONA, MONA_PASSWORD, return_on_mfa=True)
    client.sess.cookies.clear()
    with pytest.raises(GarthHTTPError) as caught:
        await asyncio.to_thread(client.resume_login, pending, MFA_CODE)
    assert status_of(caught.value) == 400
    assert caught.value.error.response.json()["responseStatus"]["type"] == "INVALID_SESSION"


async def test_mfa_challenge_is_bound_to_the_cookie_that_got_it(
    sbx_url: str, sbx_http: Http
) -> None:
    client = sandbox_client(sbx_url)
    await asyncio.to_thread(client.login, MONA, MONA_PASSWORD, return_on_mfa=True)
    await sbx_http.get("/sso/mobile/sso/en/sign-in")  # another browser, its own SSO cookie
    response = await sbx_http.post(
        "/sso/mobile/api/mfa/verifyCode", json={"mfaVerificationCode": MFA_CODE}
    )
    assert response.status == 400
    assert (await response.json())["responseStatus"]["type"] == "INVALID_SESSION"


async def test_forced_429_on_login_answers_429_with_retry_after(
    sbx_state: SandboxState, sbx_url: str
) -> None:
    sbx_state.set_fault(ALICE, "login", Fault(status=429, retry_after=30))
    client = sandbox_client(sbx_url)
    with pytest.raises(GarthHTTPError) as caught:
        await asyncio.to_thread(client.login, ALICE, ALICE_PASSWORD, return_on_mfa=True)
    response = caught.value.error.response
    assert response.status_code == 429 and response.headers["Retry-After"] == "30"
    assert response.json()["responseStatus"]["type"] == "TOO_MANY_REQUESTS"
    alice = sbx_state.get_account(ALICE)
    assert alice is not None and alice.login_attempts == 1
    assert sbx_state.requests[-1].status == 429 and sbx_state.requests[-1].account == ALICE


async def test_hang_fault_makes_the_client_time_out(sbx_state: SandboxState, sbx_url: str) -> None:
    sbx_state.set_fault(ALICE, "login", Fault(hang_seconds=3))
    client = sandbox_client(sbx_url, timeout=1)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        await asyncio.to_thread(client.login, ALICE, ALICE_PASSWORD, return_on_mfa=True)
    assert time.monotonic() - started < 2.5


async def test_zero_oauth2_lifetime_makes_garth_refresh_and_new_token_works(
    sbx_state: SandboxState, sbx_url: str, clock: FakeClock
) -> None:
    sbx_state.update_account(ALICE, {"oauth2_lifetime_seconds": 0})
    client = await garth_login(sbx_url, ALICE, ALICE_PASSWORD)
    first = client.oauth2_token.access_token
    alice = sbx_state.get_account(ALICE)
    assert alice is not None and alice.exchanges == 1
    for round_ in (1, 2):  # garth sees every lifetime-0 token as expired: one refresh per call
        profile = await api_get(client)
        assert profile["userName"] == ALICE
        assert (alice.exchanges, alice.refreshes, alice.api_calls) == (1 + round_, round_, round_)
    assert client.oauth2_token.access_token != first
    assert [r.status for r in sbx_state.requests if r.scope == "api"] == [200, 200]
    clock.advance(sbx_state.access_token_grace_seconds + 1)
    with pytest.raises(SandboxError):
        sbx_state.authorize(first)  # lifetime 0: dead once the clock-skew grace has passed


@pytest.mark.parametrize("how", ["revoke", "flag"])
async def test_revoked_oauth1_makes_refresh_fail_with_401(
    sbx_state: SandboxState, sbx_url: str, how: str
) -> None:
    sbx_state.update_account(ALICE, {"oauth2_lifetime_seconds": 0})
    client = await garth_login(sbx_url, ALICE, ALICE_PASSWORD)
    if how == "revoke":
        assert sbx_state.revoke_oauth1(ALICE) == 1
    else:
        sbx_state.update_account(ALICE, {"oauth1_revoked": True})
    with pytest.raises(requests.HTTPError) as caught:  # garth does not wrap the OAuth1 steps
        await api_get(client)
    assert caught.value.response is not None and caught.value.response.status_code == 401
    last = sbx_state.requests[-1]
    assert (last.scope, last.status, last.token_account) == ("exchange", 401, ALICE)


async def test_expired_access_tokens_answer_401_but_oauth1_still_refreshes(
    sbx_state: SandboxState, sbx_url: str
) -> None:
    client = await garth_login(sbx_url, ALICE, ALICE_PASSWORD)
    assert sbx_state.expire_access_tokens(ALICE) == 1
    with pytest.raises(GarthHTTPError) as caught:
        await api_get(client)
    assert status_of(caught.value) == 401
    await asyncio.to_thread(client.refresh_oauth2)
    assert (await api_get(client))["userName"] == ALICE


async def test_access_token_expires_by_the_sandbox_clock(
    sbx_state: SandboxState, sbx_url: str, clock: FakeClock
) -> None:
    client = await garth_login(sbx_url, ALICE, ALICE_PASSWORD)
    clock.advance(3600 + sbx_state.access_token_grace_seconds + 1)
    with pytest.raises(GarthHTTPError) as caught:
        await api_get(client)
    assert status_of(caught.value) == 401


async def test_user_settings_and_social_profile_parse(
    sbx_state: SandboxState, sbx_url: str
) -> None:
    client = await garth_login(sbx_url, BOB, BOB_PASSWORD)
    settings = await asyncio.to_thread(UserSettings.get, client=client)
    profile = await asyncio.to_thread(UserProfile.get, client=client)
    bob = sbx_state.get_account(BOB)
    assert bob is not None
    assert settings.id == bob.profile_id and settings.user_sleep.wake_time == 25200
    assert profile.profile_id == bob.profile_id and profile.user_name == BOB
    assert profile.display_name == bob.display_name and profile.full_name == bob.full_name


async def test_loaded_session_needs_the_adapter_mounted_again(sbx_url: str) -> None:
    client = await garth_login(sbx_url, ALICE, ALICE_PASSWORD)
    restored = sandbox_client(sbx_url, "u1")
    restored.loads(client.dumps())
    route(restored, sbx_url, "u1")  # configure() inside loads() re-mounted garth's adapter
    assert (await api_get(restored))["userName"] == ALICE


async def test_request_record_carries_caller_and_token_account(
    sbx_state: SandboxState, sbx_url: str
) -> None:
    owners = {"user-a": ALICE, "user-b": BOB}
    clients = await asyncio.gather(
        garth_login(sbx_url, ALICE, ALICE_PASSWORD, caller="user-a"),
        garth_login(sbx_url, BOB, BOB_PASSWORD, caller="user-b"),
    )
    await asyncio.gather(*(api_get(client) for client in clients))
    assert {r.caller for r in sbx_state.requests} == set(owners)
    with_tokens = [r for r in sbx_state.requests if r.token_account is not None]
    assert {r.scope for r in with_tokens} == {"exchange", "api"}
    for recorded in with_tokens:
        assert recorded.caller is not None
        assert recorded.token_account == owners[recorded.caller] == recorded.account
    api_calls = [r for r in sbx_state.requests if r.scope == "api"]
    assert sorted(str(r.token_account) for r in api_calls) == [ALICE, BOB]
    assert all("?" not in r.path for r in sbx_state.requests)


async def test_sandbox_logs_never_show_an_issued_secret(
    sbx_state: SandboxState, sbx_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = sandbox_client(sbx_url)
    _, pending = await asyncio.to_thread(client.login, MONA, MONA_PASSWORD, return_on_mfa=True)
    await asyncio.to_thread(client.resume_login, pending, MFA_CODE)
    await api_get(client)
    server_side = [r for r in caplog.records if r.name.startswith(("service.sandbox", "aiohttp"))]
    assert any("preauthorized" in r.getMessage() for r in server_side)
    dumped = "\n".join(f"{r.getMessage()} {vars(r)}" for r in server_side)
    assert sbx_state.issued_secrets()
    for secret in sbx_state.issued_secrets():
        assert secret not in dumped


# --- raw HTTP: SSO and OAuth edges -----------------------------------------------------------


async def test_login_without_sso_cookie_or_with_bad_json_is_refused(sbx_http: Http) -> None:
    response = await sbx_http.post(
        "/sso/mobile/api/login", json={"username": ALICE, "password": ALICE_PASSWORD}
    )
    assert response.status == 403
    assert (await response.json())["responseStatus"]["type"] == "INVALID_SESSION"
    response = await sbx_http.post("/sso/mobile/api/login", data=b"{not json")
    assert response.status == 400 and "JSON" in (await response.json())["message"]


async def test_preauthorized_checks_signature_and_burns_the_ticket(
    sbx_http: Http, clock: FakeClock
) -> None:
    ticket = await raw_ticket(sbx_http, ALICE, ALICE_PASSWORD)
    url = f"{PREAUTHORIZED}?ticket={ticket}"
    for header in ("", 'OAuth oauth_consumer_key="other", oauth_signature="x"'):
        response = await sbx_http.get(url, headers={"Authorization": header})
        assert response.status == 401
    response = await sbx_http.get(url, headers={"Authorization": GOOD_OAUTH})
    assert response.status == 200 and "oauth_token_secret=sbx-o1s-" in await response.text()
    replay = await sbx_http.get(url, headers={"Authorization": GOOD_OAUTH})
    assert replay.status == 401
    stale = await raw_ticket(sbx_http, ALICE, ALICE_PASSWORD)
    clock.advance(301)
    response = await sbx_http.get(
        f"{PREAUTHORIZED}?ticket={stale}", headers={"Authorization": GOOD_OAUTH}
    )
    assert response.status == 401


async def test_unknown_routes_answer_json(sbx_http: Http, sbx_state: SandboxState) -> None:
    token = issue_access_token(sbx_state, ALICE, ALICE_PASSWORD)
    response = await sbx_http.get(
        "/connectapi/no-such-service/x", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 404 and (await response.json())["error"] == "NotFound"
    response = await sbx_http.get("/connectapi/no-such-service/x")
    assert response.status == 401
    response = await sbx_http.get("/elsewhere")
    assert response.status == 404 and (await response.json())["error"] == "not_found"
    response = await sbx_http.get("/sso/mobile/api/login")
    assert response.status == 405 and "POST" in response.headers["Allow"]


async def test_junk_input_never_answers_500(sbx_http: Http) -> None:
    junk_bodies = [b"", b"\xff\xfe", b"[1, 2]", b'{"username": 1}', b"null", b"%%%=&&"]
    routes = [
        ("POST", "/sso/mobile/api/login"),
        ("POST", "/sso/mobile/api/mfa/verifyCode"),
        ("GET", PREAUTHORIZED + "?ticket=%ff"),
        ("POST", "/connectapi/oauth-service/oauth/exchange/user/2.0"),
        ("DELETE", "/connectapi/anything"),
        ("POST", "/_sandbox/accounts"),
        ("PATCH", f"/_sandbox/accounts/{ALICE}"),
        ("PUT", f"/_sandbox/accounts/{ALICE}/faults/api"),
        ("PUT", "/_sandbox/faults/login"),
        ("POST", "/_sandbox/reset"),
    ]
    for method, path in routes:
        for body in junk_bodies:
            headers = {"Content-Type": "application/json", "Authorization": "OAuth x"}
            response = await sbx_http.request(method, path, data=body, headers=headers)
            assert response.status < 500, (method, path, body)
            if response.status != 204:
                assert response.content_type == "application/json", (method, path, body)


async def test_daily_steps_are_deterministic(sbx_http: Http, sbx_state: SandboxState) -> None:
    token = issue_access_token(sbx_state, ALICE, ALICE_PASSWORD)
    path = "/connectapi/usersummary-service/stats/steps/daily/2024-01-01/2024-01-07"
    headers = {"Authorization": f"Bearer {token}"}
    first = await (await sbx_http.get(path, headers=headers)).json()
    second = await (await sbx_http.get(path, headers=headers)).json()
    assert len(first) == 7 and first == second
    bad = await sbx_http.get(path.replace("2024-01-07", "2023-01-07"), headers=headers)
    assert bad.status == 400


# --- raw HTTP: faults and latency ------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expect_status", "expect_type"),
    [
        (Fault(status=503, retry_after=5), 503, "application/json"),
        (Fault(html=True), 200, "text/html"),
        (Fault(html=True, status=502), 502, "text/html"),
        (Fault(truncated=True), 200, "application/json"),
    ],
)
async def test_api_faults_shape_the_answer_once(
    sbx_http: Http,
    sbx_state: SandboxState,
    fault: Fault,
    expect_status: int,
    expect_type: str,
) -> None:
    token = issue_access_token(sbx_state, ALICE, ALICE_PASSWORD)
    headers = {"Authorization": f"Bearer {token}"}
    sbx_state.set_fault(ALICE, "api", dataclasses.replace(fault, times=1))
    faulted = await sbx_http.get("/connectapi" + PROFILE, headers=headers)
    assert (faulted.status, faulted.content_type) == (expect_status, expect_type)
    if fault.retry_after is not None:
        assert faulted.headers["Retry-After"] == "5"
    if fault.truncated:
        with pytest.raises(json.JSONDecodeError):
            json.loads(await faulted.text())
    healthy = await sbx_http.get("/connectapi" + PROFILE, headers=headers)
    assert healthy.status == 200
    alice = sbx_state.get_account(ALICE)
    assert alice is not None and alice.faults == {} and alice.api_calls == 2


async def test_reset_fault_drops_the_connection(sbx_http: Http, sbx_state: SandboxState) -> None:
    token = issue_access_token(sbx_state, ALICE, ALICE_PASSWORD)
    sbx_state.set_fault(ALICE, "api", Fault(reset=True))
    with pytest.raises(aiohttp.ClientConnectionError):
        await sbx_http.get("/connectapi" + PROFILE, headers={"Authorization": f"Bearer {token}"})
    assert sbx_state.requests[-1].status is None


async def test_latency_applies_once_the_account_is_known(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.update_account(ALICE, {"latency_ms": 300})
    token = issue_access_token(sbx_state, ALICE, ALICE_PASSWORD)
    started = time.monotonic()
    await sbx_http.get("/sso/mobile/sso/en/sign-in")
    assert time.monotonic() - started < 0.25
    started = time.monotonic()
    response = await sbx_http.get(
        "/connectapi" + PROFILE, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 200 and time.monotonic() - started >= 0.3


async def test_sandbox_wide_latency_delays_the_pages_no_account_is_known_for(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.update_account(ALICE, {"latency_ms": 0})
    patched = await sbx_http.patch("/_sandbox/settings", json={"latency_ms": 300})
    assert await patched.json() == {"latency_ms": 300}
    started = time.monotonic()
    await sbx_http.get("/sso/mobile/sso/en/sign-in")
    await sbx_http.get("/sso/portal/sso/embed")
    assert time.monotonic() - started >= 0.6
    token = issue_access_token(sbx_state, ALICE, ALICE_PASSWORD)
    started = time.monotonic()
    await sbx_http.get("/connectapi" + PROFILE, headers={"Authorization": f"Bearer {token}"})
    assert time.monotonic() - started < 0.25  # Alice's own latency (0) applies to her calls
    assert [(r.scope, r.delay_ms) for r in sbx_state.requests] == [
        ("signin", 300), ("embed", 300), ("api", 0)]


async def test_sandbox_settings_reject_bad_input_and_reset_clears_them(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    for bad in ({"latency_ms": -1}, {"latency_ms": "slow"}, {"speed": 1}):
        answer = await sbx_http.patch("/_sandbox/settings", json=bad)
        assert answer.status == 400, bad
    assert await (await sbx_http.get("/_sandbox/settings")).json() == {"latency_ms": 0}
    await sbx_http.patch("/_sandbox/settings", json={"latency_ms": 5})
    assert (await sbx_http.post("/_sandbox/reset", json={})).status == 204
    assert sbx_state.settings() == {"latency_ms": 0}


# --- control API -----------------------------------------------------------------------------


async def test_control_api_round_trip(sbx_http: Http) -> None:
    carol = {"username": "carol@example.com", "password": "carol-pw", "mfa_code": "654321"}
    created = await sbx_http.post("/_sandbox/accounts", json=carol)
    body = await created.json()
    assert created.status == 201 and body["mfa_enabled"] is True and "password" not in body
    assert (await sbx_http.post("/_sandbox/accounts", json=carol)).status == 409
    assert (await sbx_http.post("/_sandbox/accounts", data=b"[oops")).status == 400
    unknown_field = await sbx_http.post("/_sandbox/accounts", json={**carol, "role": "admin"})
    assert unknown_field.status == 400 and "role" in (await unknown_field.json())["message"]

    account = "/_sandbox/accounts/carol@example.com"
    patched = await sbx_http.patch(account, json={"latency_ms": 1, "oauth2_lifetime_seconds": 60})
    assert (await patched.json())["oauth2_lifetime_seconds"] == 60
    assert (await sbx_http.patch(account, json={"latency_ms": "fast"})).status == 400

    fault = {"status": 429, "retry_after": 7, "times": 1}
    assert (await sbx_http.put(account + "/faults/login", json=fault)).status == 204
    assert (await sbx_http.put(account + "/faults/nowhere", json=fault)).status == 400
    assert (await sbx_http.put(account + "/faults/login", json={"times": 1})).status == 400
    assert (await (await sbx_http.get(account)).json())["faults"]["login"]["status"] == 429

    await sbx_http.get("/sso/mobile/sso/en/sign-in")
    answers = [
        await sbx_http.post("/sso/mobile/api/login", json=carol | {"mfa_code": None})
        for _ in range(2)
    ]
    assert answers[0].status == 429 and answers[0].headers["Retry-After"] == "7"
    assert (await answers[1].json())["responseStatus"]["type"] == "MFA_REQUIRED"
    state = await (await sbx_http.get(account)).json()
    assert state["login_attempts"] == 2 and state["faults"] == {}

    assert (await sbx_http.put(account + "/faults/api", json={"status": 500})).status == 204
    assert (await sbx_http.delete(account + "/faults/api")).status == 204
    assert (await (await sbx_http.post(account + "/revoke")).json()) == {"revoked": 0}
    expired = await sbx_http.post(account + "/expire-access-tokens")
    assert await expired.json() == {"expired": 0}
    missing = await sbx_http.get("/_sandbox/accounts/nobody@example.com")
    assert missing.status == 404 and (await missing.json())["error"] == "not_found"

    record = await (await sbx_http.get("/_sandbox/requests")).json()
    assert [r["scope"] for r in record] == ["signin", "login", "login"]
    assert [r["status"] for r in record] == [200, 429, 200]
    assert (await sbx_http.delete("/_sandbox/requests")).status == 204
    assert await (await sbx_http.get("/_sandbox/requests")).json() == []

    assert (await sbx_http.post("/_sandbox/reset")).status == 204
    assert (await sbx_http.get(account)).status == 404
    assert (await sbx_http.get(f"/_sandbox/accounts/{ALICE}")).status == 200
    assert (await sbx_http.post("/_sandbox/reset", json={"keep_seed": False})).status == 204
    assert (await sbx_http.get(f"/_sandbox/accounts/{ALICE}")).status == 404


async def test_global_signin_fault_and_issued_secrets_endpoint(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    fault = {"status": 503, "times": 1}
    assert (await sbx_http.put("/_sandbox/faults/signin", json=fault)).status == 204
    assert (await sbx_http.get("/sso/mobile/sso/en/sign-in")).status == 503
    assert (await sbx_http.get("/sso/mobile/sso/en/sign-in")).status == 200
    ticket = await raw_ticket(sbx_http, ALICE, ALICE_PASSWORD)
    secrets = await (await sbx_http.get("/_sandbox/issued-secrets")).json()
    assert secrets == sbx_state.issued_secrets() == [ticket]


# --- seed ------------------------------------------------------------------------------------


def test_seed_file_loads() -> None:
    accounts = {account.username: account for account in load_seed(SEED_FILE)}
    assert len(accounts) == 3
    assert sorted(a.mfa_code or "" for a in accounts.values()) == ["", "", "123456"]
    limited = [a for a in accounts.values() if "login" in a.faults]
    assert len(limited) == 1 and limited[0].faults["login"].status == 429
    state = SandboxState(accounts.values())
    assert len(state.accounts) == 3


def test_json_seed_loads_and_bad_seeds_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "seed.json"
    good.write_text(json.dumps({"accounts": [{"username": "x@example.com", "password": "p"}]}))
    [account] = load_seed(good)
    assert (
        isinstance(account, Account)
        and account.profile_id == Account("x@example.com", "p").profile_id
    )
    for content in (
        "accounts: nope",
        "accounts:\n  - {username: a, password: p}\n  - {username: A, password: q}",
        "accounts:\n  - {username: a, password: p, mfa_code: 123456}",
        "accounts:\n  - {username: a, password: p, faults: {login: {}}}",
        "accounts: [",
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(content)
        with pytest.raises(ValidationError):
            load_seed(bad)
