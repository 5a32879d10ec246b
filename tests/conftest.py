"""Fixtures: the Garmin sandbox on loopback, a database per test, the app and its callers.

Tests run on SQLite (a file per test) by default and on PostgreSQL when
GARMIN_SYNC_TEST_DATABASE_URL is set (one database, emptied before each test).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service import db
from service.app import create_app
from service.config import Config, load_config
from service.crypto import generate_key
from service.keys import DB_CONTEXT
from service.sandbox import (
    SANDBOX_CONSUMER_KEY,
    SANDBOX_CONSUMER_SECRET,
    Account,
    SandboxState,
    create_sandbox_app,
)

API_KEY = "test-api-key-0123456789"
PG_URL = os.environ.get("GARMIN_SYNC_TEST_DATABASE_URL", "")
TABLES = ("garmin_authentication_state", "activity", "daily_health", "sync_cursor", "sync_job",
          "user_lease")


@dataclass
class Sandbox:
    url: str
    state: SandboxState

    def add(self, username: str, password: str = "pw-correct-horse", **fields: Any) -> Account:
        return self.state.add_account(
            Account.from_dict({"username": username, "password": password, **fields})
        )


@pytest.fixture
async def sandbox(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Sandbox:
    state = SandboxState()
    server = await aiohttp_server(create_sandbox_app(state))
    return Sandbox(url=str(server.make_url("")).rstrip("/"), state=state)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return PG_URL or f"sqlite://{tmp_path}/garmin-sync.sqlite3"


@pytest.fixture
def encryption_key() -> str:
    return generate_key()


@pytest.fixture
def make_config(
    sandbox: Sandbox, database_url: str, encryption_key: str, tmp_path: Path
) -> Callable[..., Config]:
    """A configuration pointing at this test's sandbox and database; sections overridable."""

    def build(**sections: dict[str, Any]) -> Config:
        base: dict[str, dict[str, Any]] = {
            "database": {"url": database_url},
            "garmin": {"base_url": sandbox.url, "oauth_consumer_key": SANDBOX_CONSUMER_KEY,
                       "oauth_consumer_secret": SANDBOX_CONSUMER_SECRET,
                       "timeout_seconds": 2, "retries": 0, "executor_threads": 8},
            "auth": {"api_keys": [API_KEY]},
            "security": {"encryption_keys": [encryption_key], "data_dir": str(tmp_path)},
            "logging": {"level": "DEBUG"},
            # the scheduler only where a test turns it on: API tests count Garmin calls
            "sync": {"enabled": False, "lease_seconds": 30},
        }
        for section, values in sections.items():
            base[section] = {**base.get(section, {}), **values}
        return load_config(path=None, env={}, overrides=base)

    return build


async def _empty_tables(app: web.Application) -> None:
    if not PG_URL:
        return
    connection = app[DB_CONTEXT].db()
    for table in TABLES:
        await connection.execute_script(f'DELETE FROM "{table}"')


class Api:
    """A caller of the service: an aiohttp test client plus the API key and a user id."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.app = client.server.app

    @staticmethod
    def headers(user: str, key: str = API_KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "X-User-Id": user}

    async def login(self, user: str, username: str, password: str = "pw-correct-horse") -> Any:
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


@pytest.fixture
def start_api(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> Callable[[Config], Awaitable[Api]]:
    """Start an app instance (several per test model a restart or a second replica)."""
    started = 0

    async def start(config: Config) -> Api:
        nonlocal started
        client = await aiohttp_client(create_app(config))
        if started == 0:
            await _empty_tables(client.server.app)
        started += 1
        return Api(client)

    return start


@pytest.fixture
async def api(make_config: Callable[..., Config], start_api: Callable[[Config], Awaitable[Api]]
              ) -> AsyncIterator[Api]:
    yield await start_api(make_config())


async def raw_rows(api: Api) -> list[dict[str, Any]]:
    """Every auth row as the database holds it (for at-rest checks)."""
    db.activate(api.app[DB_CONTEXT])
    from service.models import GarminAuthenticationState

    return [dict(row) for row in await GarminAuthenticationState.all().values()]
