"""Fixtures: the Garmin sandbox on loopback, a database per test, the app and its callers,
and the real processes of the replica tests (what they build on is in tests/support).

Tests run on SQLite (a file per test) by default and on PostgreSQL when
GARMIN_SYNC_TEST_DATABASE_URL is set (one database, emptied before each test).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from service.app import SERVE_OPTIONS, create_app
from service.clock import SYSTEM_CLOCK, Clock
from service.config import Config, load_config
from service.crypto import generate_key
from service.keys import DB_CONTEXT
from service.sandbox import (
    SANDBOX_CONSUMER_KEY,
    SANDBOX_CONSUMER_SECRET,
    SandboxState,
    create_sandbox_app,
)
from tests.support.aliases import AiohttpClient, AiohttpServer, MakeConfig, StartApi
from tests.support.app import API_KEY, PG_URL, TABLES, Api, Sandbox
from tests.support.replicas import Cluster, migrate_schema


@pytest.fixture
async def sandbox(aiohttp_server: AiohttpServer) -> Sandbox:
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
def engine() -> str:
    """The engine of new logins in `make_config`: garth unless a module asks for both
    (`engine = both_engines`, from tests/support/app.py)."""
    return "garth"


@pytest.fixture
def make_config(
    sandbox: Sandbox, database_url: str, encryption_key: str, tmp_path: Path, engine: str
) -> MakeConfig:
    """A configuration pointing at this test's sandbox and database; sections overridable."""

    def build(**sections: dict[str, Any]) -> Config:
        base: dict[str, dict[str, Any]] = {
            "database": {"url": database_url},
            "garmin": {"base_url": sandbox.url, "oauth_consumer_key": SANDBOX_CONSUMER_KEY,
                       "oauth_consumer_secret": SANDBOX_CONSUMER_SECRET,
                       "timeout_seconds": 2, "retries": 0, "executor_threads": 8,
                       # the sandbox needs no human pauses between sign-in pages
                       "di_login_delays": False, "engine": engine},
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


async def _empty_tables_before_start() -> None:
    """A previous test's rows gone before this test's first app starts: its dispatcher
    claims at startup and would otherwise send a previous test's pending deliveries."""
    if not PG_URL:
        return
    connection = await asyncpg.connect(PG_URL)
    try:
        for table in TABLES:
            with contextlib.suppress(asyncpg.UndefinedTableError):  # not migrated yet
                await connection.execute(f'DELETE FROM "{table}"')
    finally:
        await connection.close()


async def _empty_tables(app: web.Application) -> None:
    if not PG_URL:
        return
    connection = app[DB_CONTEXT].db()
    for table in TABLES:
        await connection.execute_script(f'DELETE FROM "{table}"')


@pytest.fixture
def start_api(aiohttp_client: AiohttpClient) -> StartApi:
    """Start an app instance (several per test model a restart or a second replica), on the
    system's clock unless given another."""
    started = 0

    async def start(config: Config, clock: Clock = SYSTEM_CLOCK) -> Api:
        nonlocal started
        if started == 0:
            await _empty_tables_before_start()
        server = TestServer(create_app(config, clock))
        await server.start_server(**SERVE_OPTIONS)  # served as `garmin-sync serve` serves it
        client = await aiohttp_client(server)
        if started == 0:
            await _empty_tables(client.server.app)
        started += 1
        return Api(client)

    return start


@pytest.fixture
async def api(make_config: MakeConfig, start_api: StartApi) -> AsyncIterator[Api]:
    yield await start_api(make_config())


# --- real processes on PostgreSQL (tests/sync/test_replicas.py, tests/production/) ---------


@pytest.fixture(scope="module")
def replicas_schema() -> None:
    """The PostgreSQL schema brought up to date once per module, before any worker starts."""
    migrate_schema()


@pytest.fixture
async def cluster(replicas_schema: None, tmp_path: Path) -> AsyncIterator[Cluster]:
    cluster = Cluster(tmp_path)
    await cluster.open()
    try:
        yield cluster
    finally:
        try:
            await cluster.close()
        finally:
            # shown by pytest only when the test failed
            print(cluster.logs())
