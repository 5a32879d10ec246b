"""GET /api/v1/garmin/session/status: cached, live, refreshed, expired, unavailable."""

from __future__ import annotations

from collections.abc import Callable

from service.clock import ManualClock
from service.config import Config
from service.sandbox import Fault
from tests.support.aliases import StartApi
from tests.support.app import (
    REFRESH_SCOPE,
    SHORT_LIVED,
    Api,
    Sandbox,
    both_engines,
    raw_rows,
    token_grants,
)
from tests.support.app import connect as _connected

engine = both_engines


async def test_unknown_user_is_missing_without_creating_a_row(api: Api) -> None:
    body = await (await api.status("nobody")).json()
    assert body["status"] == "MISSING"
    assert body["checked"] == "none"
    assert await raw_rows(api) == []


async def test_fresh_validation_is_answered_from_the_database(api: Api, sandbox: Sandbox) -> None:
    await _connected(api, sandbox)
    calls = sandbox.state.get_account("alice@example.com").api_calls
    for _ in range(5):
        body = await (await api.status("user-1")).json()
        assert body["status"] == "VALID" and body["checked"] == "cached"
    assert sandbox.state.get_account("alice@example.com").api_calls == calls


async def test_refresh_true_forces_a_live_check(api: Api, sandbox: Sandbox) -> None:
    await _connected(api, sandbox)
    calls = sandbox.state.get_account("alice@example.com").api_calls
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["checked"] == "live" and body["status"] == "VALID"
    assert sandbox.state.get_account("alice@example.com").api_calls == calls + 1


async def test_stale_validation_is_checked_live(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi
) -> None:
    api = await start_api(make_config(status={"validation_ttl_seconds": 0}))
    await _connected(api, sandbox)
    body = await (await api.status("user-1")).json()
    assert body["checked"] == "live"


async def test_token_refresh_during_validation_is_persisted(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await _connected(api, sandbox, **SHORT_LIVED[engine])
    before = await raw_rows(api)
    exchanges = token_grants(sandbox, engine)
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["status"] == "VALID" and body["checked"] == "live"
    after = await raw_rows(api)
    assert token_grants(sandbox, engine) == exchanges + 1
    assert after[0]["session_data"] != before[0]["session_data"]
    # the refreshed session is written back as the use ends, then the validation
    assert after[0]["version"] == before[0]["version"] + 2


async def test_revoked_session_becomes_expired_and_is_cleared(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await _connected(api, sandbox, **SHORT_LIVED[engine])
    sandbox.state.revoke_oauth1("alice@example.com")
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["status"] == "EXPIRED"
    assert (await raw_rows(api))[0]["session_data"] is None
    assert (await (await api.status("user-1", refresh=True)).json())["status"] == "EXPIRED"


async def test_dropped_access_token_is_refreshed_once_before_expiring(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await _connected(api, sandbox)
    sandbox.state.expire_access_tokens("alice@example.com")
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["status"] == "VALID"
    assert token_grants(sandbox, engine) >= 2


async def test_transient_failures_keep_the_session(api: Api, sandbox: Sandbox) -> None:
    await _connected(api, sandbox)
    before = await raw_rows(api)
    # the 429 last: after it the service stops asking Garmin for a while
    for fault in (Fault(status=500), Fault(hang_seconds=4), Fault(reset=True),
                  Fault(truncated=True), Fault(status=429, retry_after=60)):
        sandbox.state.set_fault("alice@example.com", "api", fault)
        body = await (await api.status("user-1", refresh=True)).json()
        assert body["status"] == "VALID", fault
        assert body["checked"] == "unavailable", fault
    after = await raw_rows(api)
    assert after[0]["session_data"] == before[0]["session_data"]
    assert after[0]["version"] == before[0]["version"]


async def test_failed_refresh_is_never_persisted(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await _connected(api, sandbox, **SHORT_LIVED[engine])
    before = await raw_rows(api)
    sandbox.state.set_fault("alice@example.com", REFRESH_SCOPE[engine], Fault(status=503))
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["checked"] == "unavailable" and body["status"] == "VALID"
    assert (await raw_rows(api))[0]["session_data"] == before[0]["session_data"]
    sandbox.state.clear_fault("alice@example.com", REFRESH_SCOPE[engine])
    assert (await (await api.status("user-1", refresh=True)).json())["checked"] == "live"


async def test_ciphertext_copied_from_another_user_is_not_used(api: Api, sandbox: Sandbox) -> None:
    await _connected(api, sandbox)
    from service import db
    from service.keys import DB_CONTEXT
    from service.models import GarminAuthenticationState

    sandbox.add("bob@example.com")
    assert (await api.login("user-2", "bob@example.com")).status == 200
    db.activate(api.app[DB_CONTEXT])
    bob = await GarminAuthenticationState.get(user_id="user-2")
    await GarminAuthenticationState.filter(user_id="user-1").update(session_data=bob.session_data)
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["status"] == "EXPIRED"
    assert "log in again" in body["reason"]



async def test_after_a_429_live_checks_wait_for_retry_after(api: Api, sandbox: Sandbox) -> None:
    await _connected(api, sandbox)
    sandbox.state.set_fault("alice@example.com", "api", Fault(status=429, retry_after=60))
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["checked"] == "unavailable"
    calls = sandbox.state.get_account("alice@example.com").api_calls
    sandbox.state.clear_fault("alice@example.com", "api")
    for _ in range(3):
        body = await (await api.status("user-1", refresh=True)).json()
        assert body["checked"] == "unavailable" and body["status"] == "VALID"
    assert sandbox.state.get_account("alice@example.com").api_calls == calls


async def test_live_checks_resume_once_retry_after_has_passed(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi
) -> None:
    clock = ManualClock()
    api = await start_api(make_config(), clock)
    await _connected(api, sandbox)
    sandbox.state.set_fault("alice@example.com", "api", Fault(status=429, retry_after=1))
    assert (await (await api.status("user-1", refresh=True)).json())["checked"] == "unavailable"
    sandbox.state.clear_fault("alice@example.com", "api")
    clock.advance(0.9)
    assert (await (await api.status("user-1", refresh=True)).json())["checked"] == "unavailable"
    clock.advance(0.1)
    assert (await (await api.status("user-1", refresh=True)).json())["checked"] == "live"
