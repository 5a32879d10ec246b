"""The gateway hands every refresh to the caller's write-back before a use ends, however it
ends: a rotated DI refresh token that is not stored is a dead session."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from service.garmin import AuthRejected, GarminGateway, GarminUnavailable
from service.garmin.di.session import expiry_of
from tests.support.aliases import AiohttpServer
from tests.support.fake_garmin import (
    PROFILE,
    TOKEN,
    Answer,
    FakeGarmin,
    Received,
    jwt,
    tokens,
)
from tests.support.uses import written_to

LATER = 4_000_000_000  # an exp far ahead
PAST = 1_000_000_000  # an exp long gone: every use refreshes first


@pytest.fixture
async def garmin(aiohttp_server: AiohttpServer) -> FakeGarmin:
    fake = FakeGarmin()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    fake.on("POST", TOKEN, tokens(jwt(LATER), "r2"))
    return fake


@pytest.fixture
async def gateway(garmin: FakeGarmin) -> GarminGateway:
    return GarminGateway(garmin.settings(engine="di"), threads=2)


def expired() -> str:
    access = jwt(PAST)
    return json.dumps({"engine": "di", "v": 1, "access_token": access, "refresh_token": "r1",
                       "client_id": "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2",
                       "expires_at": expiry_of(access)})


def refresh_token_in(session: str) -> str:
    token = json.loads(session)["refresh_token"]
    assert isinstance(token, str)
    return token


async def test_a_use_cancelled_during_its_write_back_finishes_the_write_first(
    garmin: FakeGarmin, gateway: GarminGateway,
) -> None:
    garmin.on("GET", PROFILE, Answer(json={"displayName": "a"}))
    writing, proceed = asyncio.Event(), asyncio.Event()
    written: list[str] = []

    async def slow_write(session: str) -> None:
        writing.set()
        await proceed.wait()  # a database write under way
        written.append(session)

    use = asyncio.ensure_future(gateway.validate("u1", expired(), slow_write))
    await writing.wait()
    use.cancel()
    proceed.set()
    with pytest.raises(asyncio.CancelledError):
        await use

    assert [refresh_token_in(session) for session in written] == ["r2"]
    gateway.close()


async def test_a_transient_failure_after_a_refresh_is_raised_once_it_is_written_back(
    garmin: FakeGarmin, gateway: GarminGateway,
) -> None:
    garmin.on("GET", PROFILE, Answer(status=503))
    written: list[str] = []

    with pytest.raises(GarminUnavailable):
        await gateway.validate("u1", expired(), written_to(written))

    assert [refresh_token_in(session) for session in written] == ["r2"]
    gateway.close()


async def test_nothing_is_written_back_after_a_definitive_rejection(
    garmin: FakeGarmin, gateway: GarminGateway,
) -> None:
    garmin.on("GET", PROFILE, Answer(status=401, text="Token is not active"))
    written: list[str] = []

    with pytest.raises(AuthRejected):
        await gateway.validate("u1", expired(), written_to(written))

    assert written == []
    gateway.close()


async def test_a_cancelled_use_whose_write_back_fails_still_ends_cancelled(
    garmin: FakeGarmin, gateway: GarminGateway, caplog: pytest.LogCaptureFixture,
) -> None:
    calling = asyncio.Event()

    def answer_later(received: Received) -> Answer:
        calling.set()
        return Answer(json={"displayName": "a"})

    garmin.on("GET", PROFILE, answer_later)

    async def failing_write(session: str) -> None:
        raise ConnectionError("the database went away")

    use = asyncio.ensure_future(gateway.validate("u1", expired(), failing_write))
    await calling.wait()  # refreshed; the profile call is under way
    use.cancel()
    with caplog.at_level(logging.ERROR), pytest.raises(asyncio.CancelledError):
        await use

    assert "could not be written back" in caplog.text
    gateway.close()
