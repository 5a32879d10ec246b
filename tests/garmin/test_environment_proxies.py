"""Both engines' data calls honour the environment's proxies as requests would, read once
per host; `garmin.proxy_url` wins over them.

Each session is made by a sign-in straight to the sandbox; its data calls then go to an
address nothing listens on (`DEAD`), so only a proxy (the sandbox, which also answers a
proxy's absolute-form requests) can answer them. With `base_url` set the DI engine sends to
the sandbox's address and garth to Garmin's (its adapter routes later), so `NO_PROXY` below
names both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests.utils

from service.garmin import GarminSettings, GarminUnavailable, configure_consumer
from service.garmin import environment as garmin_environment
from service.garmin.di import DiEngine
from service.garmin.endpoints import PROFILE
from service.garmin.engine import Engine
from service.garmin.garth import GarthEngine
from service.sandbox import SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET
from tests.support.app import ALICE, PASSWORD, Sandbox, both_engines

DEAD = "http://127.0.0.1:9"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
SetProxies = Callable[..., None]


engine = both_engines


@pytest.fixture
def proxies(monkeypatch: pytest.MonkeyPatch) -> Iterator[SetProxies]:
    """No proxy in the environment until the test sets some (which the service reads
    afresh, as a restarted process would)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    garmin_environment.forget_environment()

    def set_proxies(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        garmin_environment.forget_environment()

    yield set_proxies
    garmin_environment.forget_environment()


def _engine(name: str, settings: GarminSettings) -> Engine:
    if name == "di":
        return DiEngine(settings, pool_size=2)
    configure_consumer(SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET)
    return GarthEngine(settings, pool_size=2)


def _settings(base_url: str, **overrides: Any) -> GarminSettings:
    return GarminSettings(base_url=base_url, timeout_seconds=5, retries=0,
                          di_login_delays=False, di_strategies=("mobile+requests",),
                          **overrides)


async def _stored_session(sandbox: Sandbox, engine: str, username: str = ALICE) -> str:
    sandbox.add(username)
    result = await asyncio.to_thread(_engine(engine, _settings(sandbox.url)).login,
                                     "user-1", username, PASSWORD)
    assert result.session is not None
    return result.session


async def _profile(engine: str, settings: GarminSettings, stored: str,
                   calls: int = 1) -> Any:
    session = _engine(engine, settings).session("user-1", stored)
    answers = [await asyncio.to_thread(session.get, PROFILE) for _ in range(calls)]
    return answers[-1]


async def test_the_environments_proxy_carries_data_calls(
    sandbox: Sandbox, engine: str, proxies: SetProxies
) -> None:
    stored = await _stored_session(sandbox, engine)
    with pytest.raises(GarminUnavailable):  # without a proxy nothing answers
        await _profile(engine, _settings(DEAD), stored)
    proxies(HTTP_PROXY=sandbox.url, HTTPS_PROXY=sandbox.url)
    answer = await _profile(engine, _settings(DEAD), stored)
    assert answer["userName"] == ALICE


async def test_no_proxy_sends_data_calls_past_the_environments_proxy(
    sandbox: Sandbox, engine: str, proxies: SetProxies
) -> None:
    stored = await _stored_session(sandbox, engine)
    proxies(HTTP_PROXY=DEAD, HTTPS_PROXY=DEAD)
    with pytest.raises(GarminUnavailable):  # the dead proxy is used
        await _profile(engine, _settings(sandbox.url), stored)
    proxies(NO_PROXY="garmin.com,127.0.0.1")
    answer = await _profile(engine, _settings(sandbox.url), stored)
    assert answer["userName"] == ALICE


async def test_the_configured_proxy_wins_over_the_environments(
    sandbox: Sandbox, engine: str, proxies: SetProxies
) -> None:
    """Even `NO_PROXY` for the host does not bypass `garmin.proxy_url`, as with requests."""
    stored = await _stored_session(sandbox, engine)
    proxies(HTTP_PROXY=DEAD, HTTPS_PROXY=DEAD, ALL_PROXY=DEAD, NO_PROXY="garmin.com,127.0.0.1")
    answer = await _profile(engine, _settings(DEAD, proxy_url=sandbox.url), stored)
    assert answer["userName"] == ALICE


async def test_the_environment_is_read_once_per_host_not_per_call(
    sandbox: Sandbox, engine: str, proxies: SetProxies, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests reads every environment variable twice per request when its session
    trusts the environment; here the proxies of a host are read once for the process."""
    stored = {user: await _stored_session(sandbox, engine, user)
              for user in ("a@example.com", "b@example.com")}
    proxies(HTTP_PROXY=sandbox.url, HTTPS_PROXY=sandbox.url)
    reads: list[str] = []
    original = requests.utils.should_bypass_proxies

    def counted(url: str, no_proxy: str | None) -> bool:
        reads.append(url)
        return original(url, no_proxy)

    monkeypatch.setattr(requests.utils, "should_bypass_proxies", counted)
    for user, session in stored.items():
        assert (await _profile(engine, _settings(DEAD), session, calls=10))["userName"] == user
    assert len(reads) == 1, reads
