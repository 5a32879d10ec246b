"""Login cooldowns per Garmin account: after Garmin throttles a sign-in, no login to that
account reaches Garmin until the cooldown ends, whichever user id or replica asks."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta
from typing import Any

import pytest

from service.clock import ManualClock
from service.crypto import Cipher, generate_key
from service.models import AccountCooldown, GarminAuthenticationState
from service.sandbox import Fault
from service.sessions.cooldowns import PURPOSE, normalised
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import (
    SIGN_IN_SCOPES,
    Api,
    Sandbox,
    both_engines,
    fault_sign_in,
    use_db,
)

ALICE, BOB = "alice@example.com", "bob@example.com"
COOLDOWN = 300  # login.cooldown_seconds in these tests


engine = both_engines


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def api(make_config: MakeConfig, start_api: StartApi, clock: ManualClock) -> Api:
    return await start_api(make_config(login={"cooldown_seconds": COOLDOWN}), clock)


def credential_posts(sandbox: Sandbox) -> int:
    return sum(1 for request in sandbox.state.requests
               if request.method == "POST" and request.path.endswith("/api/login"))


def throttle(sandbox: Sandbox, username: str, retry_after: int | None = None) -> None:
    fault_sign_in(sandbox, username, "login", Fault(status=429, retry_after=retry_after))


def unthrottle(sandbox: Sandbox, username: str) -> None:
    for scope in SIGN_IN_SCOPES["login"]:
        sandbox.state.clear_fault(username, scope)


async def cooldown_rows(api: Api) -> list[dict[str, Any]]:
    use_db(api)
    return [dict(row) for row in await AccountCooldown.all().values()]


async def refused_without_garmin(api: Api, sandbox: Sandbox, user: str, username: str) -> int:
    """The login is refused with `login-cooldown` and sends Garmin nothing; its Retry-After."""
    before = len(sandbox.state.requests)
    response = await api.login(user, username)
    assert response.status == 429, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["type"].endswith("/login-cooldown")
    assert len(sandbox.state.requests) == before
    assert body["retry_after"] == int(response.headers["Retry-After"])
    return int(response.headers["Retry-After"])


@pytest.mark.parametrize("spelling", ["alice@example.com", "  ALICE@Example.COM "])
async def test_a_second_user_id_with_the_same_garmin_account_waits_without_calling_garmin(
    api: Api, sandbox: Sandbox, clock: ManualClock, spelling: str
) -> None:
    sandbox.add(ALICE)
    throttle(sandbox, ALICE, retry_after=1200)
    first = await api.login("user-1", ALICE)
    assert first.status == 429
    assert (await first.json())["type"].endswith("/garmin-rate-limited")
    assert int(first.headers["Retry-After"]) == 1200  # Garmin's, longer than ours
    assert credential_posts(sandbox) == 1
    clock.advance(200)
    assert await refused_without_garmin(api, sandbox, "user-2", spelling) == 1000
    assert credential_posts(sandbox) == 1


async def test_our_cooldown_applies_when_garmin_asks_for_less_or_nothing(
    api: Api, sandbox: Sandbox
) -> None:
    for username, retry_after in ((ALICE, 30), (BOB, None)):
        sandbox.add(username)
        throttle(sandbox, username, retry_after=retry_after)
        response = await api.login(f"first-of-{username}", username)
        assert int(response.headers["Retry-After"]) == COOLDOWN
        assert await refused_without_garmin(api, sandbox, f"next-of-{username}",
                                            username) == COOLDOWN
    assert credential_posts(sandbox) == 2


async def test_other_garmin_accounts_are_not_affected(api: Api, sandbox: Sandbox) -> None:
    sandbox.add(ALICE)
    sandbox.add(BOB)
    throttle(sandbox, ALICE)
    assert (await api.login("user-1", ALICE)).status == 429
    # another user id, and the throttled user id itself, with another account
    for user in ("user-2", "user-1"):
        response = await api.login(user, BOB)
        assert response.status == 200, await response.text()
    assert credential_posts(sandbox) == 3


async def test_a_disconnect_does_not_end_the_accounts_cooldown(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.add(ALICE)
    assert (await api.login("user-1", ALICE)).status == 200
    throttle(sandbox, ALICE)
    assert (await api.login("user-1", ALICE)).status == 429
    assert (await api.delete("user-1")).status == 204  # deletes the user's row
    await refused_without_garmin(api, sandbox, "user-1", ALICE)
    assert credential_posts(sandbox) == 2


async def test_after_the_cooldown_a_login_reaches_garmin_and_the_expired_row_goes(
    api: Api, sandbox: Sandbox, clock: ManualClock
) -> None:
    sandbox.add(ALICE)
    throttle(sandbox, ALICE)
    assert (await api.login("user-1", ALICE)).status == 429
    unthrottle(sandbox, ALICE)  # Garmin's block has ended; ours still runs
    clock.advance(COOLDOWN - 1)
    assert await refused_without_garmin(api, sandbox, "user-2", ALICE) == 1
    clock.advance(1)
    response = await api.login("user-2", ALICE)
    assert response.status == 200, await response.text()
    assert credential_posts(sandbox) == 2
    assert await cooldown_rows(api) == []


async def test_starting_a_cooldown_removes_every_expired_one(
    api: Api, sandbox: Sandbox, clock: ManualClock
) -> None:
    sandbox.add(ALICE)
    sandbox.add(BOB)
    throttle(sandbox, ALICE)
    throttle(sandbox, BOB)
    assert (await api.login("user-1", ALICE)).status == 429
    clock.advance(COOLDOWN)
    assert len(await cooldown_rows(api)) == 1  # nobody asked for Alice's account since
    assert (await api.login("user-2", BOB)).status == 429
    rows = await cooldown_rows(api)
    assert [row["until"] for row in rows] == [clock.now() + timedelta(seconds=COOLDOWN)]


async def test_the_table_names_accounts_by_a_keyed_hash_never_the_username(
    api: Api, sandbox: Sandbox, encryption_key: str
) -> None:
    sandbox.add(ALICE)
    throttle(sandbox, ALICE)
    assert (await api.login("user-1", ALICE)).status == 429
    rows = await cooldown_rows(api)
    key = Cipher([encryption_key]).derived_keys(PURPOSE)[0]
    expected = hmac.new(key, ALICE.encode(), hashlib.sha256).hexdigest()
    assert [row["account"] for row in rows] == [expected]
    assert hashlib.sha256(ALICE.encode()).hexdigest() != expected  # keyed, not a bare hash
    assert "alice" not in repr(rows).lower()


def test_usernames_are_compared_as_garmin_compares_them() -> None:
    assert normalised("  Alice@Example.COM\n") == normalised("alice@example.com")
    assert normalised("\uff21\uff2c\uff29\uff23\uff25@example.com") == ALICE  # full-width
    assert normalised("alice@example.com") != normalised("alice2@example.com")


async def test_every_replica_honours_the_cooldown(
    api: Api, sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi,
    clock: ManualClock
) -> None:
    other = await start_api(make_config(login={"cooldown_seconds": COOLDOWN}), clock)
    sandbox.add(ALICE)
    throttle(sandbox, ALICE)
    assert (await api.login("user-1", ALICE)).status == 429
    await refused_without_garmin(other, sandbox, "user-2", ALICE)
    assert credential_posts(sandbox) == 1


@pytest.mark.parametrize("engine", ["di"])
async def test_a_key_rotation_keeps_cooldowns_while_the_old_key_stays_configured(
    api: Api, sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi,
    clock: ManualClock, encryption_key: str
) -> None:
    sandbox.add(ALICE)
    throttle(sandbox, ALICE)
    assert (await api.login("user-1", ALICE)).status == 429
    unthrottle(sandbox, ALICE)
    new_key = generate_key()
    rotated = await start_api(make_config(login={"cooldown_seconds": COOLDOWN}, security={
        "encryption_keys": [new_key, encryption_key]}), clock)
    await refused_without_garmin(rotated, sandbox, "user-2", ALICE)
    # with the old key removed, the cooldowns named under it are forgotten (documented)
    retired = await start_api(make_config(login={"cooldown_seconds": COOLDOWN}, security={
        "encryption_keys": [new_key]}), clock)
    assert (await retired.login("user-2", ALICE)).status == 200
    assert credential_posts(sandbox) == 2



async def test_a_per_user_cooldown_set_by_the_previous_release_is_still_honoured(
    api: Api, sandbox: Sandbox, clock: ManualClock
) -> None:
    sandbox.add(ALICE)
    assert (await api.login("user-1", ALICE)).status == 200
    use_db(api)
    await GarminAuthenticationState.filter(user_id="user-1").update(
        login_cooldown_until=clock.now() + timedelta(seconds=60))
    assert await refused_without_garmin(api, sandbox, "user-1", ALICE) == 60
    clock.advance(60)
    assert (await api.login("user-1", ALICE)).status == 200
    rows = await GarminAuthenticationState.filter(user_id="user-1").values()
    assert rows[0]["login_cooldown_until"] is None  # a new session clears it


# --- the code step of a login that needed MFA ----------------------------------------------

MONA, CODE = "mona@example.com", "123456"


async def _challenge(api: Api, sandbox: Sandbox, user: str = "user-1") -> None:
    response = await api.login(user, MONA)
    assert (await response.json())["status"] == "MFA_REQUIRED", await response.text()


async def code_refused_without_garmin(api: Api, sandbox: Sandbox, user: str) -> None:
    before = len(sandbox.state.requests)
    response = await api.mfa(user, CODE)
    assert response.status == 429, await response.text()
    assert (await response.json())["type"].endswith("/login-cooldown")
    assert len(sandbox.state.requests) == before


async def test_a_rate_limited_code_step_cools_the_account_down_and_keeps_the_challenge(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.add(MONA, mfa_code=CODE)
    await _challenge(api, sandbox)
    fault_sign_in(sandbox, MONA, "mfa", Fault(status=429, retry_after=30))
    response = await api.mfa("user-1", CODE)
    assert response.status == 429
    assert (await response.json())["type"].endswith("/garmin-rate-limited")
    assert int(response.headers["Retry-After"]) == COOLDOWN
    await code_refused_without_garmin(api, sandbox, "user-1")
    assert (await (await api.status("user-1")).json())["status"] == "MFA_PENDING"
    await refused_without_garmin(api, sandbox, "user-2", MONA)


async def test_a_waiting_challenge_honours_a_cooldown_another_user_id_started(
    api: Api, sandbox: Sandbox, clock: ManualClock
) -> None:
    sandbox.add(MONA, mfa_code=CODE)
    await _challenge(api, sandbox)
    throttle(sandbox, MONA)
    assert (await api.login("user-2", MONA)).status == 429
    await code_refused_without_garmin(api, sandbox, "user-1")
    clock.advance(COOLDOWN)  # within the challenge's life (mfa.ttl_seconds: 600)
    response = await api.mfa("user-1", CODE)
    assert response.status == 200, await response.text()
    assert (await (await api.status("user-1")).json())["status"] == "VALID"
