"""A DI MFA challenge survives wrong codes and processes; ha-garmin's private MFA
attributes are still the ones `mfa_state` carries.

Assumed shapes: the sign-in answers `{"responseStatus": {"type": "MFA_REQUIRED"},
"customerMfaInfo": {"mfaLastMethodUsed": ...}}`; a wrong code `INVALID_MFA_CODE` in SSO JSON
(here with a 200, as the mobile URL answers; the classifier also takes a 4xx); the SSO
session lives in the cookies the sign-in page set.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import ha_garmin.auth as ha_auth
import pytest
from ha_garmin.auth import GarminAuth
from ha_garmin.exceptions import GarminAuthError, GarminMFARequired

from service.garmin import GarminSettings, MfaChallengeLost, MfaCodeInvalid, RateLimited
from service.garmin.di import DiEngine, mfa_state
from service.garmin.di.instance import new_auth
from service.garmin.di.wire import Wire
from tests.support.aliases import AiohttpServer
from tests.support.fake_garmin import (
    MOBILE_CODE,
    MOBILE_LOGIN,
    PORTAL_CODE,
    PORTAL_LOGIN,
    Answer,
    FakeGarmin,
    Received,
)

RIGHT = "123456"
LATER = 4_000_000_000


@pytest.fixture
async def garmin(aiohttp_server: AiohttpServer) -> FakeGarmin:
    fake = FakeGarmin()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    fake.signs_in(exp=LATER)
    needs_code = Answer(json={"responseStatus": {"type": "MFA_REQUIRED"},
                              "customerMfaInfo": {"mfaLastMethodUsed": "email"}})
    fake.on("POST", MOBILE_LOGIN, needs_code)
    fake.on("POST", PORTAL_LOGIN, needs_code)

    def check(request: Received) -> Answer:
        if request.cookies.get("SESSION") != "s1":  # the challenge lives in the SSO session
            return Answer(status=400, json={"error": {"status-code": "400"}})
        if (request.body or {}).get("mfaVerificationCode") != RIGHT:
            return Answer(json={"responseStatus": {"type": "INVALID_MFA_CODE"}})
        return Answer(json={"responseStatus": {"type": "SUCCESSFUL"},
                            "serviceTicketId": "ST-MFA"})

    fake.on("POST", MOBILE_CODE, check)
    fake.on("POST", PORTAL_CODE, check)
    return fake


def codes(garmin: FakeGarmin) -> list[Received]:
    return garmin.posts(MOBILE_CODE) + garmin.posts(PORTAL_CODE)


def test_clear_mfa_state_resets_exactly_what_mfa_state_carries() -> None:
    """Fails when an ha-garmin upgrade renames, adds or drops an MFA attribute."""
    touched: list[str] = []

    class Recording(GarminAuth):
        def __setattr__(self, name: str, value: Any) -> None:
            touched.append(name)
            super().__setattr__(name, value)

    auth = Recording()
    touched.clear()
    auth._clear_mfa_state()
    assert set(touched) == {*mfa_state.CARRIED, mfa_state.SESSION, mfa_state.PENDING,
                            *mfa_state.WIDGET_ONLY}


# the private methods of `GarminAuth` the engine drives, with the parameters it passes
DRIVEN = {
    "_do_mobile_login": ("self", "sess", "email", "password"),
    "_do_portal_web_login": ("self", "sess", "email", "password"),
    "_complete_mfa": ("self", "mfa_code"),
    "_refresh_di_token": ("self",),
}


@pytest.mark.parametrize("name", list(DRIVEN))
def test_the_private_methods_the_engine_drives_are_still_ha_garmins(name: str) -> None:
    """Fails when an ha-garmin upgrade renames a step the engine runs itself or changes
    what it takes."""
    method = getattr(GarminAuth, name, None)
    assert method is not None, f"ha-garmin no longer has GarminAuth.{name}"
    assert tuple(inspect.signature(method).parameters) == DRIVEN[name]


def test_the_names_the_wire_replaces_are_still_ha_garmins() -> None:
    """The token calls go through `_http_post` and the pauses through `time.sleep`."""
    assert "_http_post(" in inspect.getsource(GarminAuth._refresh_di_token)
    assert "_http_post(" in inspect.getsource(GarminAuth._exchange_service_ticket)
    assert "time.sleep(" in inspect.getsource(GarminAuth._do_mobile_login)
    assert getattr(ha_auth._http_post, "__wrapped__", None) is not None
    assert type(vars(ha_auth)["time"]).__name__ == "_Clock"


@pytest.mark.parametrize("strategy", ["mobile+cffi", "mobile+requests", "portal+requests"])
async def test_a_wrong_code_keeps_the_challenge_for_the_right_one(
        garmin: FakeGarmin, strategy: str) -> None:
    engine = DiEngine(garmin.settings(di_strategies=(strategy,)))
    started = await asyncio.to_thread(engine.login, "u1", "a@x", "pw")
    assert started.session is None and started.mfa_state is not None
    assert started.mfa_method == "email"

    with pytest.raises(MfaCodeInvalid) as wrong:
        await asyncio.to_thread(engine.resume_mfa, "u1", started.mfa_state, "000000")
    assert getattr(wrong.value, "codes_posted", None) == 2  # ha-garmin tries both URLs
    assert wrong.value.mfa_state is not None
    assert len(codes(garmin)) == 2

    # a new engine (another replica) finishes it from the kept challenge
    other = DiEngine(garmin.settings(di_strategies=(strategy,)))
    session = await asyncio.to_thread(other.resume_mfa, "u1", wrong.value.mfa_state, RIGHT)
    assert json.loads(session)["engine"] == "di"
    assert len(codes(garmin)) == 3  # the right code was accepted by the first URL
    assert all(r.cookies.get("SESSION") == "s1" for r in codes(garmin))
    assert garmin.posts("/diauth/di-oauth2-service/oauth/token")[-1].form[
        "service_ticket"] == "ST-MFA"


async def test_ha_garmins_complete_mfa_loses_the_challenge_after_a_wrong_code(
        garmin: FakeGarmin) -> None:
    """The trap `mfa_state` avoids: the same instance cannot take the right code next."""
    settings = garmin.settings()
    auth = new_auth(settings)
    wire = Wire(settings, "u1")

    def drive() -> None:
        with wire.active():
            with pytest.raises(GarminMFARequired):
                auth._do_mobile_login(wire.session("requests"), "a@x", "pw")
            with pytest.raises(GarminAuthError):
                auth.complete_mfa("000000")
            assert auth._mfa_session is None
            with pytest.raises(GarminAuthError):
                auth.complete_mfa(RIGHT)

    await asyncio.to_thread(drive)
    assert len(codes(garmin)) == 2  # the right code never reached Garmin


async def test_a_429_on_the_first_code_url_sends_nothing_more(garmin: FakeGarmin) -> None:
    engine = DiEngine(garmin.settings(di_strategies=("mobile+requests",)))
    started = await asyncio.to_thread(engine.login, "u1", "a@x", "pw")
    assert started.mfa_state is not None
    garmin.on("POST", MOBILE_CODE, Answer(status=429, json={}, headers={"Retry-After": "60"}))
    with pytest.raises(RateLimited) as caught:
        await asyncio.to_thread(engine.resume_mfa, "u1", started.mfa_state, RIGHT)
    assert caught.value.retry_after == 60
    assert getattr(caught.value, "codes_posted", None) == 1 and len(codes(garmin)) == 1


async def test_a_challenge_garmin_forgot_is_lost(garmin: FakeGarmin) -> None:
    engine = DiEngine(garmin.settings(di_strategies=("mobile+requests",)))
    started = await asyncio.to_thread(engine.login, "u1", "a@x", "pw")
    assert started.mfa_state is not None
    state = json.loads(started.mfa_state)
    state["cookies"] = []  # as if Garmin expired the SSO session
    with pytest.raises(MfaChallengeLost):
        await asyncio.to_thread(engine.resume_mfa, "u1", json.dumps(state), RIGHT)


@pytest.mark.parametrize("state", [
    "not json", "{}", json.dumps({"engine": "di", "v": 99, "attributes": {}}),
    json.dumps({"engine": "di", "v": 1, "attributes": {"_mfa_flow": "widget"}}),
])
def test_an_unreadable_challenge_is_lost(state: str) -> None:
    engine = DiEngine(GarminSettings())
    with pytest.raises(MfaChallengeLost):
        engine.resume_mfa("u1", state, RIGHT)


async def test_a_challenge_of_another_domain_is_lost(garmin: FakeGarmin) -> None:
    engine = DiEngine(garmin.settings(di_strategies=("mobile+requests",)))
    started = await asyncio.to_thread(engine.login, "u1", "a@x", "pw")
    assert started.mfa_state is not None
    elsewhere = DiEngine(garmin.settings(domain="garmin.cn"))
    with pytest.raises(MfaChallengeLost):
        await asyncio.to_thread(elsewhere.resume_mfa, "u1", started.mfa_state, RIGHT)
