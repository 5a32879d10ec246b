"""POST /api/v1/garmin/session/login against the sandbox."""

from __future__ import annotations

import pytest

from service.sandbox import Fault
from tests.support.app import Api, Sandbox, both_engines, fault_sign_in, raw_rows

engine = both_engines


async def test_login_success_stores_a_valid_session(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    response = await api.login("user-1", "alice@example.com")
    assert response.status == 200
    assert await response.json() == {"status": "SUCCESS"}
    status = await (await api.status("user-1")).json()
    assert status["status"] == "VALID"
    assert status["connected_at"] is not None


async def test_wrong_password_is_422_and_stores_nothing(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    response = await api.login("user-1", "alice@example.com", password="wrong")
    assert response.status == 422
    body = await response.json()
    assert response.content_type == "application/problem+json"
    assert body["type"].endswith("garmin-invalid-credentials")
    assert "wrong" not in await response.text()
    assert (await (await api.status("user-1")).json())["status"] == "MISSING"


async def test_wrong_password_keeps_an_existing_session(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    assert (await api.login("user-1", "alice@example.com")).status == 200
    before = (await raw_rows(api))[0]["session_data"]
    assert (await api.login("user-1", "alice@example.com", password="nope")).status == 422
    assert (await raw_rows(api))[0]["session_data"] == before


async def test_garmin_429_answers_429_with_retry_after_and_is_never_retried(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.add("alice@example.com")
    assert (await api.login("user-1", "alice@example.com")).status == 200
    before = (await raw_rows(api))[0]["session_data"]
    sandbox.state.set_fault("alice@example.com", "login", Fault(status=429, retry_after=1200))
    response = await api.login("user-1", "alice@example.com")
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1200
    assert sandbox.state.get_account("alice@example.com").login_attempts == 2
    assert (await raw_rows(api))[0]["session_data"] == before


BLOCKS = {"427": Fault(status=427), "429 in a 200 JSON body": Fault(
    body={"error": {"status-code": "429", "message": "Too Many Requests"}})}


@pytest.mark.parametrize("block", list(BLOCKS))
async def test_garmins_other_blocks_are_rate_limits_with_one_credential_post(
    api: Api, sandbox: Sandbox, block: str
) -> None:
    """Garmin's SSO also blocks with a 427, and with a 429 inside a 200 JSON body."""
    sandbox.add("alice@example.com")
    fault_sign_in(sandbox, "alice@example.com", "login", BLOCKS[block])
    response = await api.login("user-1", "alice@example.com")
    assert response.status == 429, await response.text()
    assert (await response.json())["type"].endswith("garmin-rate-limited")
    posts = [r for r in sandbox.state.requests
             if r.method == "POST" and r.path.endswith("/api/login")]
    assert len(posts) == 1
    again = await api.login("user-1", "alice@example.com")
    assert (await again.json())["type"].endswith("login-cooldown")


async def test_after_a_429_the_account_cools_down_without_calling_garmin(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.add("alice@example.com")
    sandbox.state.set_fault("alice@example.com", "login", Fault(status=429, times=1))
    assert (await api.login("user-1", "alice@example.com")).status == 429
    attempts = sandbox.state.get_account("alice@example.com").login_attempts
    second = await api.login("user-1", "alice@example.com")
    assert second.status == 429
    assert (await second.json())["type"].endswith("login-cooldown")
    assert sandbox.state.get_account("alice@example.com").login_attempts == attempts


async def test_garmin_5xx_is_503_and_keeps_the_session(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    assert (await api.login("user-1", "alice@example.com")).status == 200
    before = (await raw_rows(api))[0]["session_data"]
    fault_sign_in(sandbox, "alice@example.com", "login", Fault(status=500))
    response = await api.login("user-1", "alice@example.com")
    assert response.status in (502, 503)
    assert (await raw_rows(api))[0]["session_data"] == before
    assert (await (await api.status("user-1")).json())["status"] == "VALID"


async def test_garmin_timeout_is_503_and_keeps_the_session(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    assert (await api.login("user-1", "alice@example.com")).status == 200
    before = (await raw_rows(api))[0]["session_data"]
    fault_sign_in(sandbox, "alice@example.com", "login", Fault(hang_seconds=4))
    response = await api.login("user-1", "alice@example.com")
    assert response.status == 503
    assert "in time" in (await response.json())["detail"]
    assert (await raw_rows(api))[0]["session_data"] == before


async def test_garmin_connection_reset_is_503(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    fault_sign_in(sandbox, "alice@example.com", "login", Fault(reset=True))
    response = await api.login("user-1", "alice@example.com")
    assert response.status == 503


async def test_html_error_page_from_garmin_is_502(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    fault_sign_in(sandbox, "alice@example.com", "login", Fault(html=True))
    response = await api.login("user-1", "alice@example.com")
    assert response.status == 502


async def test_second_login_replaces_the_session(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    assert (await api.login("user-1", "alice@example.com")).status == 200
    first = await raw_rows(api)
    assert (await api.login("user-1", "alice@example.com")).status == 200
    second = await raw_rows(api)
    assert second[0]["session_data"] != first[0]["session_data"]
    assert second[0]["version"] > first[0]["version"]


async def test_disconnect_deletes_session_and_is_idempotent(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    assert (await api.login("user-1", "alice@example.com")).status == 200
    assert (await api.delete("user-1")).status == 204
    assert await raw_rows(api) == []
    assert (await api.delete("user-1")).status == 204
    assert (await (await api.status("user-1")).json())["status"] == "MISSING"
