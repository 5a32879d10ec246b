"""The gateway sends new logins to the configured engine and a stored session or MFA
challenge back to the engine that made it."""

from __future__ import annotations

import json

import pytest

from service.garmin import AuthRejected, GarminGateway, MfaChallengeLost
from service.garmin.endpoints import PROFILE
from tests.support.aliases import AiohttpServer
from tests.support.fake_garmin import MOBILE_LOGIN, Answer, FakeGarmin
from tests.support.uses import written_to

LATER = 4_000_000_000


@pytest.fixture
async def garmin(aiohttp_server: AiohttpServer) -> FakeGarmin:
    fake = FakeGarmin()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


async def test_a_di_login_is_used_by_the_di_engine(garmin: FakeGarmin) -> None:
    garmin.signs_in(exp=LATER)
    garmin.on("GET", f"/connectapi{PROFILE}", Answer(json={"displayName": "a"}))
    gateway = GarminGateway(garmin.settings(engine="di"), threads=2)
    try:
        result = await gateway.login("u1", "a@x", "pw")
        assert result.session is not None and json.loads(result.session)["engine"] == "di"
        written: list[str] = []
        assert await gateway.validate("u1", result.session, written_to(written)) == {
            "displayName": "a"}
        assert written == []  # nothing was refreshed
        assert len(garmin.posts(MOBILE_LOGIN)) == 1
    finally:
        gateway.close()


async def test_stored_values_go_back_to_their_engine(garmin: FakeGarmin) -> None:
    gateway = GarminGateway(garmin.settings(engine="di"), threads=2)
    try:
        with pytest.raises(AuthRejected, match="cannot be read"):  # garth reads it
            await gateway.validate("u1", "bm90IGEgZ2FydGggc2Vzc2lvbg==", written_to([]))
        with pytest.raises(AuthRejected, match="unknown Garmin engine"):
            await gateway.validate("u1", json.dumps({"engine": "elsewhere"}), written_to([]))
        with pytest.raises(MfaChallengeLost):  # garth's challenge format, garth's check
            await gateway.resume_mfa("u1", json.dumps({"v": 0, "cookies": []}), "123456")
        assert garmin.received == []
    finally:
        gateway.close()
    with pytest.raises(ValueError, match="unknown Garmin engine"):
        GarminGateway(garmin.settings(engine="nope"), threads=1)
