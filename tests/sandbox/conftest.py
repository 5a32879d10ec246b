"""Fixtures for the sandbox's own tests: a sandbox on loopback, garth kept offline, and
ha-garmin's DI client pointed at the sandbox."""

from __future__ import annotations

import time

import garth.sso
import ha_garmin.auth
import pytest
from aiohttp.test_utils import TestServer
from ha_garmin.auth import GarminAuth

from service.sandbox import (
    SANDBOX_CONSUMER_KEY,
    SANDBOX_CONSUMER_SECRET,
    Account,
    SandboxState,
    create_sandbox_app,
)
from tests.support.aliases import AiohttpClient, AiohttpServer, Http
from tests.support.sandbox import (
    ALICE,
    ALICE_PASSWORD,
    BOB,
    BOB_PASSWORD,
    MFA_CODE,
    MONA,
    MONA_PASSWORD,
    FakeClock,
)

HA_GARMIN_DELAYS = (
    "MOBILE_DELAY_MIN_S",
    "MOBILE_DELAY_MAX_S",
    "LOGIN_DELAY_MIN_S",
    "LOGIN_DELAY_MAX_S",
    "WIDGET_DELAY_MIN_S",
    "WIDGET_DELAY_MAX_S",
)


@pytest.fixture(autouse=True)
def _garth_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """garth must never read GARTH_HOME/TOKEN nor download its consumer from the internet."""
    monkeypatch.delenv("GARTH_HOME", raising=False)
    monkeypatch.delenv("GARTH_TOKEN", raising=False)
    monkeypatch.setattr(
        garth.sso,
        "OAUTH_CONSUMER",
        {"consumer_key": SANDBOX_CONSUMER_KEY, "consumer_secret": SANDBOX_CONSUMER_SECRET},
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(time.time())


@pytest.fixture
def sbx_state(clock: FakeClock) -> SandboxState:
    """Seeded with a plain user (alice), a second one (bob) and an MFA user (mona)."""
    return SandboxState(
        [
            Account(username=ALICE, password=ALICE_PASSWORD),
            Account(username=BOB, password=BOB_PASSWORD),
            Account(username=MONA, password=MONA_PASSWORD, mfa_code=MFA_CODE),
        ],
        clock=clock,
    )


@pytest.fixture
async def sbx_server(
    aiohttp_server: AiohttpServer, sbx_state: SandboxState
) -> TestServer:
    return await aiohttp_server(create_sandbox_app(sbx_state))


@pytest.fixture
def sbx_url(sbx_server: TestServer) -> str:
    return str(sbx_server.make_url("")).rstrip("/")


@pytest.fixture
async def sbx_http(aiohttp_client: AiohttpClient, sbx_server: TestServer) -> Http:
    """A raw HTTP client (with a cookie jar) on the same sandbox."""
    return await aiohttp_client(sbx_server)


@pytest.fixture
def ha_auth(sbx_url: str, monkeypatch: pytest.MonkeyPatch) -> GarminAuth:
    """ha-garmin's real DI client with every Garmin host pointed at the sandbox.

    Its anti-WAF pauses are set to 0 (they only sleep between a page load and its POST); its
    portal service URL stays Garmin's, as the sandbox only compares it with the ticket's.
    Its calls block, so tests run them with `asyncio.to_thread`.
    """
    for name in HA_GARMIN_DELAYS:
        monkeypatch.setattr(ha_garmin.auth, name, 0.0)
    auth = GarminAuth()
    auth._sso = f"{sbx_url}/sso"
    auth._connectapi = f"{sbx_url}/connectapi"
    auth._di_token_url = f"{sbx_url}/diauth/di-oauth2-service/oauth/token"
    return auth
