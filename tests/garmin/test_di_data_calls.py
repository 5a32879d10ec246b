"""A DI data call reaches Garmin exactly as `requests.Session.get` would send it: the same
request line, headers in the same order, the use's cookies, requests' redirects.

The engine prepares and sends the request itself (the session layer's work on every call
cost more CPU than the rest of the call); a plain requests session sending ha-garmin's
headers is the reference.
"""

from __future__ import annotations

import asyncio
import functools
import json

import pytest
import requests

from service.garmin.di import DiEngine
from service.garmin.di.instance import new_auth
from service.garmin.di.session import expiry_of, load
from service.garmin.routing import SANDBOX_CALLER_HEADER
from tests.support.aliases import AiohttpServer
from tests.support.fake_garmin import PROFILE, Answer, FakeGarmin, jwt

PATH = "/userprofile-service/socialProfile"
LATER = 4_000_000_000  # an exp far ahead


@pytest.fixture
async def garmin(aiohttp_server: AiohttpServer) -> FakeGarmin:
    fake = FakeGarmin()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


def stored(access: str) -> str:
    return json.dumps({"engine": "di", "v": 1, "access_token": access, "refresh_token": "r1",
                       "client_id": "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2",
                       "expires_at": expiry_of(access)})


async def test_a_data_call_is_the_request_requests_sends(garmin: FakeGarmin) -> None:
    garmin.on("GET", PROFILE, Answer(json={"ok": 1}))
    settings = garmin.settings()
    session = stored(jwt(LATER))
    params = {"start": 0, "limit": 20, "search": "a b/ä", "skipped": None, "ids": [1, 2]}

    api = DiEngine(settings).session("u1", session)
    assert await asyncio.to_thread(api.get, PATH, params) == {"ok": 1}

    auth = new_auth(settings)
    load(auth, session)
    reference = await asyncio.to_thread(functools.partial(
        requests.get, f"{garmin.url}/connectapi{PATH}", params=params, timeout=5,
        headers={**auth.get_api_headers(), SANDBOX_CALLER_HEADER: "u1"}))
    assert reference.json() == {"ok": 1}

    ours, theirs = garmin.received
    assert ours.query == theirs.query == "start=0&limit=20&search=a+b%2F%C3%A4&ids=1&ids=2"
    assert list(ours.headers.items()) == list(theirs.headers.items())


async def test_cookies_garmin_sets_stay_with_the_use(garmin: FakeGarmin) -> None:
    garmin.on("GET", PROFILE, Answer(json={}, cookies={"__cf_bm": "u1-cookie"}),
              Answer(json={}))
    engine = DiEngine(garmin.settings())
    first = engine.session("u1", stored(jwt(LATER)))
    for _ in range(2):
        await asyncio.to_thread(first.get, PATH)
    other = engine.session("u2", stored(jwt(LATER)))
    await asyncio.to_thread(other.get, PATH)
    assert [r.cookies for r in garmin.received] == [{}, {"__cf_bm": "u1-cookie"}, {}]


async def test_a_redirect_is_followed_with_the_token(garmin: FakeGarmin) -> None:
    moved = "/connectapi/userprofile-service/moved"
    garmin.on("GET", PROFILE, Answer(status=302, headers={"Location": moved},
                                     cookies={"hop": "1"}))
    garmin.on("GET", moved, Answer(json={"moved": True}))
    access = jwt(LATER)
    api = DiEngine(garmin.settings()).session("u1", stored(access))
    assert await asyncio.to_thread(api.get, PATH) == {"moved": True}
    hop = garmin.received[-1]
    assert hop.path == moved and hop.cookies == {"hop": "1"}
    assert hop.headers["Authorization"] == f"Bearer {access}"
