"""The service as the tests drive it: an API caller, the in-process Garmin sandbox, and the
steps many tests share (connect a user, run a sync to its end, read what was stored).

Tests run on SQLite (a file per test) by default and on PostgreSQL when
GARMIN_SYNC_TEST_DATABASE_URL is set; the fixtures building these live in tests/conftest.py.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service import db
from service.keys import DB_CONTEXT, SCHEDULER
from service.sandbox import Account, Fault, SandboxState
from tests.support.waiting import eventually

API_KEY = "test-api-key-0123456789"
PG_URL = os.environ.get("GARMIN_SYNC_TEST_DATABASE_URL", "")
TABLES = ("garmin_authentication_state", "activity", "daily_health", "sync_cursor", "sync_job",
          "user_lease", "webhook_event", "webhook_delivery", "webhook_user_sequence",
          "webhook_sync_health", "garmin_account_cooldown")
PASSWORD = "pw-correct-horse"
ALICE = "alice@example.com"


@dataclass
class Sandbox:
    """The fake Garmin on loopback: its URL and its state, scriptable from the test."""

    url: str
    state: SandboxState

    def add(self, username: str, password: str = PASSWORD, **fields: Any) -> Account:
        return self.state.add_account(
            Account.from_dict({"username": username, "password": password, **fields})
        )


class Api:
    """A caller of the service: an aiohttp test client plus the API key and a user id."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.app = client.server.app

    @staticmethod
    def headers(user: str, key: str = API_KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "X-User-Id": user}

    async def login(self, user: str, username: str, password: str = PASSWORD) -> Any:
        return await self.client.post("/api/v1/garmin/session/login", headers=self.headers(user),
                                      json={"username": username, "password": password})

    async def mfa(self, user: str, code: str) -> Any:
        return await self.client.post("/api/v1/garmin/session/mfa", headers=self.headers(user),
                                      json={"mfa_code": code})

    async def status(self, user: str, refresh: bool = False) -> Any:
        query = "?refresh=true" if refresh else ""
        return await self.client.get(f"/api/v1/garmin/session/status{query}",
                                     headers=self.headers(user))

    async def delete(self, user: str) -> Any:
        return await self.client.delete("/api/v1/garmin/session", headers=self.headers(user))


async def connect(api: Api, sandbox: Sandbox, user: str = "user-1", username: str = ALICE,
                  **account: Any) -> None:
    """Add the Garmin account `username` (with `account`'s fields) and log `user` in to it."""
    sandbox.add(username, **account)
    response = await api.login(user, username)
    assert response.status == 200, await response.text()


def use_db(api: Api) -> None:
    """Point the ORM at this app instance's database (a test may run several instances)."""
    db.activate(api.app[DB_CONTEXT])


async def raw_rows(api: Api) -> list[dict[str, Any]]:
    """Every auth row as the database holds it (for at-rest checks)."""
    use_db(api)
    from service.models import GarminAuthenticationState

    return [dict(row) for row in await GarminAuthenticationState.all().values()]


async def drain(api: Api, timeout: float = 30) -> None:
    """Wait until this app instance runs no sync job."""
    scheduler = api.app[SCHEDULER]
    await eventually(lambda: not scheduler.active_jobs, timeout, "the sync jobs to finish")


async def sync_now(api: Api, user: str, *kinds: str) -> list[dict[str, Any]]:
    """POST /sync, wait for the jobs, return them as the jobs endpoint reports them."""
    body = {"kinds": list(kinds)} if kinds else {}
    response = await api.client.post("/api/v1/garmin/sync", headers=api.headers(user), json=body)
    assert response.status == 202, await response.text()
    ids = {job["id"] for job in (await response.json())["jobs"]}
    await drain(api)
    listing = await api.client.get("/api/v1/garmin/sync/jobs?limit=500", headers=api.headers(user))
    return [job for job in (await listing.json())["items"] if job["id"] in ids]



ENGINES = ("di", "garth")
# the sandbox scopes of one sign-in step, for both engines: garth uses the mobile flow only,
# the DI engine moves on to the portal flow when the mobile one fails
SIGN_IN_SCOPES = {"login": ("login", "portal_login"), "mfa": ("mfa", "portal_mfa")}
# account fields whose tokens need a refresh before the next call, per engine
SHORT_LIVED = {"garth": {"oauth2_lifetime_seconds": 0}, "di": {"di_access_lifetime_seconds": 0}}
# the sandbox scope of a token refresh, per engine
REFRESH_SCOPE = {"garth": "exchange", "di": "di_refresh"}
# codes one MFA attempt sends Garmin: ha-garmin posts a code to the app's and the web URL
CODES_PER_ATTEMPT = {"garth": 1, "di": 2}


def fault_sign_in(sandbox: Sandbox, username: str, step: str, fault: Fault) -> None:
    """`fault` on a sign-in step of every flow either engine may try (each its own copy)."""
    for scope in SIGN_IN_SCOPES[step]:
        sandbox.state.set_fault(username, scope, dataclasses.replace(fault))


def token_grants(sandbox: Sandbox, engine: str, username: str = ALICE) -> int:
    """Token grants the account's engine asked for: the login's exchange and each refresh."""
    account = sandbox.state.require_account(username)
    if engine == "di":
        return account.di_exchanges + account.di_refresh_attempts
    return account.exchanges


# the sandbox's count of refreshes that worked, per engine (`token_grants` counts attempts)
REFRESHES = {"garth": "refreshes", "di": "di_refreshes"}


def refreshes(sandbox: Sandbox, engine: str, username: str = ALICE) -> int:
    """Refreshes of the account's session that Garmin granted, with the account's engine."""
    return int(getattr(sandbox.state.require_account(username), REFRESHES[engine]))


@pytest.fixture(params=ENGINES, name="engine")
def both_engines(request: pytest.FixtureRequest) -> str:
    """The engine of new logins, once per engine: a module whose tests all run for both
    declares `engine = both_engines`."""
    return str(request.param)
