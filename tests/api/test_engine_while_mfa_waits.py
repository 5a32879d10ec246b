"""The engine a status names while a login of one engine waits for its MFA code beside a
session of the other.

A user holds a garth session; Garmin rejects it and a DI login waits for its code, in
either order. While the code is awaited the status names the pending login's engine
(`MFA_PENDING`, `di`), a wrong code changes nothing, and once the challenge ends without a
session the status names the rejected session's engine again (`EXPIRED`, `garth`); a
completed MFA stores a DI session (`VALID`, `di`).
"""

from __future__ import annotations

from typing import Any

import pytest

from service.clock import ManualClock
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import ALICE, Api, Sandbox, connect, raw_rows, use_db

MFA_USER = "mfa@example.com"
CODE = "123456"
TTL = 600


async def _status(api: Api, refresh: bool = False) -> dict[str, Any]:
    response = await api.status("user-1", refresh=refresh)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def _shown(body: dict[str, Any]) -> tuple[str, str | None]:
    return body["status"], body["engine"]


async def _garth_session_then_di_logins(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi, clock: ManualClock
) -> Api:
    """user-1 holds a garth session; the service now makes DI logins. The status cache keeps
    answers as long as the clock allows, so a stale engine would show."""
    garth = await start_api(make_config(garmin={"engine": "garth"}), clock)
    await connect(garth, sandbox)
    await garth.client.close()
    api = await start_api(make_config(garmin={"engine": "di"}, status={"cache_seconds": 3600},
                                      mfa={"ttl_seconds": TTL, "max_attempts": 4}), clock)
    assert _shown(await _status(api)) == ("VALID", "garth")
    sandbox.add(MFA_USER, mfa_code=CODE)
    return api


async def _garmin_rejects_the_garth_session(api: Api, sandbox: Sandbox) -> dict[str, Any]:
    sandbox.state.revoke_oauth1(ALICE)
    sandbox.state.expire_access_tokens(ALICE)
    return await _status(api, refresh=True)


async def _di_login_waits_for_its_code(api: Api) -> None:
    body = await (await api.login("user-1", MFA_USER)).json()
    assert body["status"] == "MFA_REQUIRED"


async def _columns(api: Api) -> tuple[str | None, str | None]:
    (row,) = await raw_rows(api)
    return row["engine"], row["mfa_engine"]


@pytest.mark.parametrize("first", ["rejected, then a login waits",
                                   "a login waits, then rejected"])
@pytest.mark.parametrize("ending", ["challenge expires", "attempts run out", "right code"])
async def test_the_status_names_the_pending_login_then_the_session_again(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi, first: str, ending: str
) -> None:
    clock = ManualClock()
    api = await _garth_session_then_di_logins(sandbox, make_config, start_api, clock)
    if first == "rejected, then a login waits":
        assert _shown(await _garmin_rejects_the_garth_session(api, sandbox)) == (
            "EXPIRED", "garth")
        await _di_login_waits_for_its_code(api)
    else:
        await _di_login_waits_for_its_code(api)
        # the stored session still answers for the user, under its own engine
        body = await _status(api)
        assert _shown(body) == ("VALID", "garth") and body["mfa_pending"] is True
        assert _shown(await _garmin_rejects_the_garth_session(api, sandbox)) == (
            "MFA_PENDING", "di")
    assert _shown(await _status(api)) == ("MFA_PENDING", "di")
    assert await _columns(api) == ("garth", "di")

    wrong = await api.mfa("user-1", "000000")
    assert wrong.status == 422 and (await wrong.json())["attempts_remaining"] == 2
    assert _shown(await _status(api)) == ("MFA_PENDING", "di")

    if ending == "challenge expires":
        clock.advance(TTL + 1)
        assert _shown(await _status(api)) == ("EXPIRED", "garth")
        assert (await api.mfa("user-1", CODE)).status == 410  # and the challenge is cleared
        assert _shown(await _status(api)) == ("EXPIRED", "garth")
        assert await _columns(api) == ("garth", None)
    elif ending == "attempts run out":
        wrong = await api.mfa("user-1", "000001")
        assert wrong.status == 422 and (await wrong.json())["attempts_remaining"] == 0
        assert _shown(await _status(api)) == ("EXPIRED", "garth")
        assert await _columns(api) == ("garth", None)
    else:
        assert (await api.mfa("user-1", CODE)).status == 200
        assert _shown(await _status(api)) == ("VALID", "di")
        body = await _status(api, refresh=True)
        assert _shown(body) == ("VALID", "di") and body["checked"] == "live"
        assert await _columns(api) == ("di", None)


async def test_a_challenge_without_its_engine_column_is_named_by_its_own_marker(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    """A challenge stored beside a session before challenges had a column (the migration
    cannot read the sealed marker in SQL, so it leaves `mfa_engine` NULL)."""
    api = await _garth_session_then_di_logins(sandbox, make_config, start_api, ManualClock())
    await _di_login_waits_for_its_code(api)
    use_db(api)
    from service.models import GarminAuthenticationState

    await GarminAuthenticationState.filter(user_id="user-1").update(mfa_engine=None)
    assert _shown(await _garmin_rejects_the_garth_session(api, sandbox)) == ("MFA_PENDING", "di")
