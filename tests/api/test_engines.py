"""New logins through the configured engine, stored sessions through their own engine.

The DI engine makes new sessions by default; a garth session stored before keeps syncing
with garth until Garmin rejects it, and the next login then makes a DI session. MFA keeps its
challenge after a wrong code whatever status Garmin answers it with, and counts the codes
Garmin saw.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from service.config import Config
from service.sandbox import Fault
from service.sandbox.accounts import MFA_INVALID_STATUSES
from tests.support.app import (
    ALICE,
    Api,
    Sandbox,
    both_engines,
    connect,
    raw_rows,
    sync_now,
    use_db,
)

StartApi = Callable[[Config], Awaitable[Api]]
MakeConfig = Callable[..., Config]
MFA_USER = "mfa@example.com"


engine = both_engines


async def _engine_shown(api: Api, user: str = "user-1") -> str | None:
    body = await (await api.status(user)).json()
    engine: str | None = body["engine"]
    return engine


async def test_a_new_user_connects_through_the_configured_engine(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    assert await _engine_shown(api) is None
    await connect(api, sandbox)
    assert await _engine_shown(api) == engine
    assert (await raw_rows(api))[0]["engine"] == engine
    jobs = await sync_now(api, "user-1", "activities")
    assert [job["status"] for job in jobs] == ["SUCCESS"]


async def test_a_new_user_connects_with_mfa_and_the_pending_login_names_its_engine(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    sandbox.add(MFA_USER, mfa_code="123456")
    assert (await (await api.login("user-1", MFA_USER)).json())["status"] == "MFA_REQUIRED"
    body = await (await api.status("user-1")).json()
    assert body["status"] == "MFA_PENDING" and body["engine"] == engine
    assert (await api.mfa("user-1", "123456")).status == 200
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["status"] == "VALID" and body["checked"] == "live" and body["engine"] == engine


@pytest.mark.parametrize("invalid_status", MFA_INVALID_STATUSES)
async def test_a_wrong_code_keeps_the_challenge_whatever_status_garmin_answers(
    api: Api, sandbox: Sandbox, engine: str, invalid_status: int
) -> None:
    sandbox.add(MFA_USER, mfa_code="123456", mfa_invalid_status=invalid_status)
    assert (await (await api.login("user-1", MFA_USER)).json())["status"] == "MFA_REQUIRED"
    wrong = await api.mfa("user-1", "000000")
    assert wrong.status == 422, await wrong.text()
    assert (await (await api.status("user-1")).json())["status"] == "MFA_PENDING"
    right = await api.mfa("user-1", "123456")
    assert right.status == 200, await right.text()
    assert await _engine_shown(api) == engine


@pytest.mark.parametrize("engine", ["di"])
async def test_mfa_max_attempts_counts_the_codes_garmin_saw(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi, engine: str
) -> None:
    api = await start_api(make_config(mfa={"max_attempts": 3}))
    sandbox.add(MFA_USER, mfa_code="123456")
    assert (await (await api.login("user-1", MFA_USER)).json())["status"] == "MFA_REQUIRED"
    first = await api.mfa("user-1", "000001")
    posted = sandbox.state.require_account(MFA_USER).mfa_attempts
    assert posted == 2  # the app's URL and the web one
    assert (await first.json())["attempts_remaining"] == 3 - posted
    second = await api.mfa("user-1", "000002")
    assert second.status == 422
    assert (await second.json())["attempts_remaining"] == 0
    assert (await api.mfa("user-1", "123456")).status == 409
    assert (await (await api.status("user-1")).json())["status"] == "MISSING"


@pytest.mark.parametrize("engine", ["di"])
async def test_a_di_login_throttled_by_garmin_posts_the_credentials_once_and_cools_down(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.add(ALICE)
    sandbox.state.set_fault(ALICE, "login", Fault(status=429, retry_after=1200))

    def credential_posts() -> int:
        return sum(1 for request in sandbox.state.requests
                   if request.method == "POST" and request.path.endswith("/api/login"))

    response = await api.login("user-1", ALICE)
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1200
    assert credential_posts() == 1
    again = await api.login("user-1", ALICE)
    assert again.status == 429
    assert (await again.json())["type"].endswith("login-cooldown")
    assert credential_posts() == 1


@pytest.mark.parametrize("engine", ["garth"])
async def test_a_stored_garth_session_keeps_syncing_with_garth_after_the_default_is_di(
    api: Api, sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    await connect(api, sandbox)
    await api.client.close()
    restarted = await start_api(make_config(garmin={"engine": "di"}))
    grants = sandbox.state.require_account(ALICE).di_exchanges
    jobs = await sync_now(restarted, "user-1", "activities")
    assert [job["status"] for job in jobs] == ["SUCCESS"]
    assert await _engine_shown(restarted) == "garth"
    assert sandbox.state.require_account(ALICE).di_exchanges == grants == 0

    # Garmin rejects the garth session: it expires, and the next login is a DI one
    sandbox.state.revoke_oauth1(ALICE)
    sandbox.state.expire_access_tokens(ALICE)
    body = await (await restarted.status("user-1", refresh=True)).json()
    assert body["status"] == "EXPIRED" and body["engine"] == "garth"  # the rejected session
    assert (await restarted.login("user-1", ALICE)).status == 200
    assert await _engine_shown(restarted) == "di"
    jobs = await sync_now(restarted, "user-1", "activities")
    assert [job["status"] for job in jobs] == ["SUCCESS"]
    assert sandbox.state.require_account(ALICE).di_exchanges == 1


@pytest.mark.parametrize("engine", ["garth"])
async def test_a_row_from_before_the_engine_column_reads_as_garth(
    api: Api, sandbox: Sandbox
) -> None:
    await connect(api, sandbox)
    use_db(api)
    from service.models import GarminAuthenticationState

    await GarminAuthenticationState.filter(user_id="user-1").update(engine=None)
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["status"] == "VALID" and body["checked"] == "live"
    assert body["engine"] == "garth"


@pytest.mark.parametrize("engine", ["di"])
async def test_a_di_login_ends_at_its_deadline_without_trying_another_strategy(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    """Garmin hangs on the first sign-in page: the request's timeout (2 s) is cut to what is
    left of `login.timeout_seconds` (1 s), and no strategy runs after the deadline."""
    api = await start_api(make_config(login={"timeout_seconds": 1}))
    sandbox.add(ALICE)
    sandbox.state.set_fault(ALICE, "signin", Fault(hang_seconds=3))
    sandbox.state.set_fault(ALICE, "portal_signin", Fault(hang_seconds=3))

    response = await api.login("user-1", ALICE)

    assert response.status == 503, await response.text()
    assert (await response.json())["detail"] == "Garmin did not answer in time."
    sent = [r for r in sandbox.state.requests if r.caller == "user-1"]
    assert [(r.method, r.scope) for r in sent] == [("GET", "signin")]


@pytest.mark.parametrize("engine", ["garth"])
async def test_a_garth_login_ends_at_its_deadline_though_each_request_is_in_time(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    """Each sign-in step takes 1.5 s, within the 4 s request timeout, but the credential
    POST starts with at most 1 s left of `login.timeout_seconds` (2.5 s): its timeout is
    cut to that, and the login answers the 503 of a DI login's deadline."""
    api = await start_api(make_config(garmin={"timeout_seconds": 4},
                                      login={"timeout_seconds": 2.5}))
    sandbox.add(ALICE)
    sandbox.state.set_fault(ALICE, "signin", Fault(hang_seconds=1.5))
    sandbox.state.set_fault(ALICE, "login", Fault(hang_seconds=1.5))

    response = await api.login("user-1", ALICE)

    assert response.status == 503, await response.text()
    assert (await response.json())["detail"] == "Garmin did not answer in time."
    sent = [r for r in sandbox.state.requests if r.caller == "user-1"]
    assert [(r.method, r.scope) for r in sent] == [("GET", "signin"), ("POST", "login")]
    assert (await raw_rows(api))[0]["session_data"] is None
