"""POST /api/v1/garmin/session/mfa: resumable from any instance, bounded attempts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from service import db
from service.config import Config
from service.keys import DB_CONTEXT
from service.models import GarminAuthenticationState
from service.models.cooldowns import AccountCooldown
from service.sandbox import Fault
from tests.support.aliases import StartApi
from tests.support.app import (
    CODES_PER_ATTEMPT,
    SIGN_IN_SCOPES,
    Api,
    Sandbox,
    both_engines,
    fault_sign_in,
    raw_rows,
)

engine = both_engines



async def _start_mfa(api: Api, sandbox: Sandbox, user: str = "user-1") -> dict[str, object]:
    sandbox.add("mfa@example.com", mfa_code="123456")
    response = await api.login(user, "mfa@example.com")
    assert response.status == 200
    return dict(await response.json())


async def test_login_with_mfa_answers_mfa_required(api: Api, sandbox: Sandbox) -> None:
    body = await _start_mfa(api, sandbox)
    assert body["status"] == "MFA_REQUIRED"
    assert body["mfa_method"] == "email"
    assert datetime.fromisoformat(str(body["expires_at"])) > datetime.now(UTC)
    status = await (await api.status("user-1")).json()
    assert status["status"] == "MFA_PENDING"


async def test_mfa_code_is_accepted_by_a_new_app_instance(
    api: Api, sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi
) -> None:
    await _start_mfa(api, sandbox)
    await api.client.close()
    restarted = await start_api(make_config())
    response = await restarted.mfa("user-1", "123456")
    assert response.status == 200, await response.text()
    assert await response.json() == {"status": "SUCCESS"}
    status = await (await restarted.status("user-1", refresh=True)).json()
    assert status["status"] == "VALID"
    assert status["checked"] == "live"
    assert status["mfa_pending"] is False


async def test_wrong_code_then_right_code_succeeds(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await _start_mfa(api, sandbox)
    wrong = await api.mfa("user-1", "000000")
    assert wrong.status == 422
    assert (await wrong.json())["attempts_remaining"] == 5 - CODES_PER_ATTEMPT[engine]
    assert (await (await api.status("user-1")).json())["status"] == "MFA_PENDING"
    right = await api.mfa("user-1", "123456")
    assert right.status == 200


async def test_too_many_wrong_codes_drop_the_pending_login(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi, engine: str
) -> None:
    # two attempts' worth of codes, as Garmin counts them
    api = await start_api(make_config(mfa={"max_attempts": 2 * CODES_PER_ATTEMPT[engine]}))
    await _start_mfa(api, sandbox)
    assert (await api.mfa("user-1", "000001")).status == 422
    last = await api.mfa("user-1", "000002")
    assert last.status == 422
    assert (await last.json())["attempts_remaining"] == 0
    assert (await api.mfa("user-1", "123456")).status == 409
    assert (await (await api.status("user-1")).json())["status"] == "MISSING"


async def test_expired_mfa_is_410_and_cleared(api: Api, sandbox: Sandbox) -> None:
    await _start_mfa(api, sandbox)
    db.activate(api.app[DB_CONTEXT])
    await GarminAuthenticationState.filter(user_id="user-1").update(
        mfa_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = await api.mfa("user-1", "123456")
    assert response.status == 410
    rows = await raw_rows(api)
    assert rows[0]["mfa_state"] is None and rows[0]["mfa_pending"] is False
    assert (await api.mfa("user-1", "123456")).status == 409


async def test_mfa_without_pending_login_is_409(api: Api, sandbox: Sandbox) -> None:
    response = await api.mfa("user-1", "123456")
    assert response.status == 409
    assert response.content_type == "application/problem+json"


async def test_mfa_pending_does_not_hide_an_existing_valid_session(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.add("mfa@example.com", mfa_code="123456")
    sandbox.state.update_account("mfa@example.com", {"mfa_code": None})
    assert (await api.login("user-1", "mfa@example.com")).status == 200
    sandbox.state.update_account("mfa@example.com", {"mfa_code": "123456"})
    assert (await (await api.login("user-1", "mfa@example.com")).json())["status"] == "MFA_REQUIRED"
    status = await (await api.status("user-1")).json()
    assert status["status"] == "VALID"
    assert status["mfa_pending"] is True


async def test_garmin_outage_during_mfa_keeps_the_challenge(api: Api, sandbox: Sandbox) -> None:
    await _start_mfa(api, sandbox)
    fault_sign_in(sandbox, "mfa@example.com", "mfa", Fault(status=503, times=1))
    assert (await api.mfa("user-1", "123456")).status in (502, 503)
    assert (await api.mfa("user-1", "123456")).status == 200


MFA_BLOCKS = {"429": Fault(status=429), "429 in a 200 JSON body": Fault(
    body={"error": {"status-code": "429", "message": "Too Many Requests"}})}


def _code_posts(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.state.requests
               if r.method == "POST" and r.scope in SIGN_IN_SCOPES["mfa"])


@pytest.mark.parametrize("block", list(MFA_BLOCKS))
async def test_a_rate_limit_at_the_code_check_keeps_the_challenge_and_cools_down(
    api: Api, sandbox: Sandbox, block: str
) -> None:
    """Garmin blocks the code check (a 429, or one inside a 200 JSON body): a rate limit,
    as at the credential step. One code post, the challenge kept, and no code goes to
    Garmin until the account's cooldown has passed; then the kept challenge takes it."""
    await _start_mfa(api, sandbox)
    challenge = (await raw_rows(api))[0]["mfa_state"]
    fault_sign_in(sandbox, "mfa@example.com", "mfa", MFA_BLOCKS[block])

    response = await api.mfa("user-1", "123456")

    assert response.status == 429, await response.text()
    assert (await response.json())["type"].endswith("garmin-rate-limited")
    assert int(response.headers["Retry-After"]) >= 900  # login.cooldown_seconds
    assert _code_posts(sandbox) == 1
    row = (await raw_rows(api))[0]
    assert row["mfa_pending"] is True and row["mfa_state"] == challenge
    assert row["mfa_attempts"] == 1  # the code Garmin was sent
    again = await api.mfa("user-1", "123456")
    assert again.status == 429
    assert (await again.json())["type"].endswith("login-cooldown")
    assert _code_posts(sandbox) == 1

    for scope in SIGN_IN_SCOPES["mfa"]:
        sandbox.state.clear_fault("mfa@example.com", scope)
    db.activate(api.app[DB_CONTEXT])
    # the account's cooldown has passed
    await AccountCooldown.all().update(until=datetime.now(UTC) - timedelta(seconds=1))
    assert (await api.mfa("user-1", "123456")).status == 200


OUTAGES = {"503": Fault(status=503, times=1), "timeout": Fault(hang_seconds=1.5, times=1)}


@pytest.mark.parametrize("outage", list(OUTAGES))
async def test_codes_posted_in_an_attempt_garmin_did_not_answer_count_as_attempts(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi, engine: str,
    outage: str
) -> None:
    """Garmin answers the code check with 503 or not in time (1 s): no verdict, so the
    challenge stays, but the codes it was sent count toward `mfa.max_attempts` (5), as
    Garmin may have counted them."""
    api = await start_api(make_config(garmin={"timeout_seconds": 1}))
    await _start_mfa(api, sandbox)
    fault_sign_in(sandbox, "mfa@example.com", "mfa", OUTAGES[outage])

    response = await api.mfa("user-1", "000000")

    assert response.status == 503, await response.text()
    row = (await raw_rows(api))[0]
    assert row["mfa_pending"] is True and row["mfa_attempts"] == CODES_PER_ATTEMPT[engine]
    wrong = await api.mfa("user-1", "000001")
    assert wrong.status == 422
    assert (await wrong.json())["attempts_remaining"] == 5 - 2 * CODES_PER_ATTEMPT[engine]
    assert (await api.mfa("user-1", "123456")).status == 200


async def test_an_outage_that_uses_the_last_attempts_drops_the_challenge(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi, engine: str
) -> None:
    api = await start_api(make_config(mfa={"max_attempts": CODES_PER_ATTEMPT[engine]}))
    await _start_mfa(api, sandbox)
    fault_sign_in(sandbox, "mfa@example.com", "mfa", Fault(status=503, times=1))
    assert (await api.mfa("user-1", "123456")).status == 503
    assert (await raw_rows(api))[0]["mfa_state"] is None
    assert (await api.mfa("user-1", "123456")).status == 409
