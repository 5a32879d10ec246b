"""The DI engine against the sandbox's DI face: sign-in, MFA across engines, refresh with
rotation and reuse detection, Garmin's faults, and many users at once without one token
crossing to another user (the DI twin of `test_isolation`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from service.garmin import (
    AuthRejected,
    GarminGateway,
    GarminSettings,
    GarminUnavailable,
    InvalidCredentials,
    MfaCodeInvalid,
    RateLimited,
)
from service.garmin.di import DiEngine
from service.garmin.endpoints import PROFILE
from service.sandbox import Fault
from tests.support.app import PASSWORD, Sandbox
from tests.support.uses import written_to

USERS = 16


def settings_for(sandbox: Sandbox, **overrides: Any) -> GarminSettings:
    values: dict[str, Any] = {"base_url": sandbox.url, "timeout_seconds": 5, "retries": 0,
                              "di_login_delays": False, "engine": "di"}
    return GarminSettings(**{**values, **overrides})


def login_posts(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.state.requests
               if r.method == "POST" and r.path.endswith("/api/login"))


async def test_a_sign_in_gives_a_session_that_reads_the_profile(sandbox: Sandbox) -> None:
    sandbox.add("di@example.com")
    engine = DiEngine(settings_for(sandbox))
    result = await asyncio.to_thread(engine.login, "u1", "di@example.com", PASSWORD)
    assert result.session is not None
    api = engine.session("u1", result.session)
    profile = await asyncio.to_thread(api.get, PROFILE)
    assert profile["displayName"] == "di"
    assert not api.refreshed and login_posts(sandbox) == 1


async def test_a_wrong_password_and_a_429_each_end_the_login(sandbox: Sandbox) -> None:
    sandbox.add("di@example.com")
    engine = DiEngine(settings_for(sandbox))
    with pytest.raises(InvalidCredentials):
        await asyncio.to_thread(engine.login, "u1", "di@example.com", "wrong")
    assert login_posts(sandbox) == 1
    sandbox.state.clear_requests()
    account = sandbox.add("limited@example.com")
    account.faults["login"] = Fault(status=429, retry_after=90)
    account.faults["portal_login"] = Fault(status=429, retry_after=90)
    with pytest.raises(RateLimited) as caught:
        await asyncio.to_thread(engine.login, "u1", "limited@example.com", PASSWORD)
    assert caught.value.retry_after == 90 and login_posts(sandbox) == 1


async def test_mfa_wrong_code_then_right_code_in_another_engine(sandbox: Sandbox) -> None:
    sandbox.add("mfa@example.com", mfa_code="123456")
    started = await asyncio.to_thread(DiEngine(settings_for(sandbox)).login, "u1",
                                      "mfa@example.com", PASSWORD)
    assert started.mfa_state is not None
    with pytest.raises(MfaCodeInvalid) as wrong:
        await asyncio.to_thread(DiEngine(settings_for(sandbox)).resume_mfa, "u1",
                                started.mfa_state, "000000")
    posted = getattr(wrong.value, "codes_posted", None)
    assert posted is not None and posted >= 1
    assert wrong.value.mfa_state is not None
    session = await asyncio.to_thread(DiEngine(settings_for(sandbox)).resume_mfa, "u1",
                                      wrong.value.mfa_state, "123456")
    assert json.loads(session)["engine"] == "di"


async def test_an_expired_token_is_refreshed_and_the_old_refresh_token_is_dead(
        sandbox: Sandbox) -> None:
    sandbox.add("short@example.com", di_access_lifetime_seconds=1)
    engine = DiEngine(settings_for(sandbox, di_refresh_margin_seconds=60))
    result = await asyncio.to_thread(engine.login, "u1", "short@example.com", PASSWORD)
    assert result.session is not None
    api = engine.session("u1", result.session)
    await asyncio.to_thread(api.get, PROFILE)
    written = api.refreshed_session()
    assert written is not None
    assert json.loads(written)["refresh_token"] != json.loads(result.session)["refresh_token"]
    # the session from before the refresh presents a rotated refresh token
    with pytest.raises(AuthRejected):
        await asyncio.to_thread(engine.session("u1", result.session).get, PROFILE)
    # the written one works
    await asyncio.to_thread(engine.session("u1", written).get, PROFILE)


@pytest.mark.parametrize(("fault", "error"), [
    (Fault(status=503), GarminUnavailable),
    (Fault(status=429, retry_after=30), RateLimited),
])
async def test_a_refresh_fault_is_transient_and_writes_nothing(
        sandbox: Sandbox, fault: Fault, error: type[Exception]) -> None:
    account = sandbox.add("short@example.com", di_access_lifetime_seconds=1)
    engine = DiEngine(settings_for(sandbox, di_refresh_margin_seconds=60))
    result = await asyncio.to_thread(engine.login, "u1", "short@example.com", PASSWORD)
    assert result.session is not None
    account.faults["di_refresh"] = fault
    api = engine.session("u1", result.session)
    with pytest.raises(error):
        await asyncio.to_thread(api.get, PROFILE)
    assert api.refreshed_session() is None
    del account.faults["di_refresh"]
    await asyncio.to_thread(engine.session("u1", result.session).get, PROFILE)  # still alive


async def test_concurrent_di_logins_and_uses_never_cross_tokens(sandbox: Sandbox) -> None:
    owner_of = {f"user-{i}": f"athlete{i}@example.com" for i in range(USERS)}
    for username in owner_of.values():
        sandbox.add(username, di_access_lifetime_seconds=1)
    gateway = GarminGateway(settings_for(sandbox, di_refresh_margin_seconds=60), threads=8)

    async def connect_and_use(user: str) -> None:
        result = await gateway.login(user, owner_of[user], PASSWORD)
        assert result.session is not None
        session = result.session
        for _ in range(3):
            written: list[str] = []
            await gateway.validate(user, session, written_to(written))
            assert len(written) == 1  # the 1 s token is always refreshed
            session = written[0]

    try:
        await asyncio.gather(*(connect_and_use(user) for user in owner_of))
    finally:
        gateway.close()
    bearer_calls = [r for r in sandbox.state.requests if r.scope == "api"]
    assert len(bearer_calls) >= USERS * 3
    crossed = [r for r in sandbox.state.requests
               if r.caller is not None and r.token_account is not None
               and r.token_account.casefold() != owner_of[r.caller].casefold()]
    assert crossed == []
