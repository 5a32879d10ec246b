"""The DI engine against a scripted Garmin: sign-in strategies, the login's bounds, and a
stored session's refresh (rotation, and Garmin's answers told apart).

Assumed answer shapes (from ha-garmin 0.1.53's parsing): SSO JSON
`{"responseStatus": {"type": ...}, "serviceTicketId": ...}`; token endpoint JSON
`{"access_token": <JWT with exp, client_id>, "refresh_token": ...}` and OAuth2 errors
`{"error": "invalid_grant"}`; connectapi's `401` with "Token is not active".
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from service.garmin import (
    AuthRejected,
    GarminProtocolError,
    GarminUnavailable,
    InvalidCredentials,
    RateLimited,
)
from service.garmin.di import DiEngine
from service.garmin.di.instance import URL_ATTRIBUTES, new_auth
from service.garmin.di.session import expiry_of
from service.garmin.engine import GarminSettings, engine_of
from tests.support.aliases import AiohttpServer
from tests.support.fake_garmin import (
    MOBILE_LOGIN,
    MOBILE_SIGN_IN,
    PORTAL_LOGIN,
    PORTAL_SIGN_IN,
    PROFILE,
    SIGN_IN_PAGE,
    TOKEN,
    Answer,
    FakeGarmin,
    Received,
    jwt,
    tokens,
)

LATER = 4_000_000_000  # an exp far ahead
PAST = 1_000_000_000  # an exp long gone


@pytest.fixture
async def garmin(aiohttp_server: AiohttpServer) -> FakeGarmin:
    fake = FakeGarmin()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


def stored(access: str, refresh: str = "r1") -> str:
    return json.dumps({"engine": "di", "v": 1, "access_token": access, "refresh_token": refresh,
                       "client_id": "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2",
                       "expires_at": expiry_of(access)})


def credential_posts(garmin: FakeGarmin) -> int:
    return len(garmin.posts(MOBILE_LOGIN)) + len(garmin.posts(PORTAL_LOGIN))


# -- sign-in ---------------------------------------------------------------------------


async def test_a_sign_in_stores_the_di_tokens_with_their_expiry(garmin: FakeGarmin) -> None:
    garmin.signs_in(exp=LATER, refresh="r1")
    result = await asyncio.to_thread(DiEngine(garmin.settings()).login, "u1", "a@x", "pw")
    assert result.session is not None and result.mfa_state is None
    session = json.loads(result.session)
    assert session["engine"] == "di" and engine_of(result.session) == "di"
    assert session["refresh_token"] == "r1" and session["expires_at"] == LATER
    assert session["client_id"] == "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2"
    exchange = garmin.posts(TOKEN)[0]
    assert exchange.form["service_ticket"] == "ST-1"
    assert exchange.headers["X-Sandbox-Caller"] == "u1"
    assert credential_posts(garmin) == 1


async def test_a_429_ends_the_login_after_one_credential_post(garmin: FakeGarmin) -> None:
    garmin.signs_in(exp=LATER)
    garmin.on("POST", MOBILE_LOGIN, Answer(status=429, text="", headers={"Retry-After": "120"}))
    garmin.on("POST", PORTAL_LOGIN, Answer(status=429, text=""))
    engine = DiEngine(garmin.settings())
    with pytest.raises(RateLimited) as caught:
        await asyncio.to_thread(engine.login, "u1", "a@x", "pw")
    assert caught.value.retry_after == 120
    assert credential_posts(garmin) == 1


async def test_a_429_in_the_json_body_also_ends_the_login(garmin: FakeGarmin) -> None:
    garmin.signs_in(exp=LATER)
    garmin.on("POST", MOBILE_LOGIN, Answer(json={"error": {"status-code": "429"}}))
    with pytest.raises(RateLimited):
        await asyncio.to_thread(DiEngine(garmin.settings()).login, "u1", "a@x", "pw")
    assert credential_posts(garmin) == 1


async def test_ha_garmins_own_login_posts_the_credentials_again_after_429s(
        garmin: FakeGarmin) -> None:
    """The trap the engine avoids: `GarminAuth.login` moves on to other fingerprints and
    strategies after a 429, each a credential POST."""
    from service.garmin.di.wire import Wire

    garmin.on("GET", MOBILE_SIGN_IN, Answer(text=SIGN_IN_PAGE))
    garmin.on("GET", "/sso/portal/sso/en-US/sign-in", Answer(text=SIGN_IN_PAGE))
    garmin.on("POST", MOBILE_LOGIN, Answer(status=429))
    garmin.on("POST", PORTAL_LOGIN, Answer(status=429))
    settings = garmin.settings()
    auth = new_auth(settings)
    auth._sso = f"{garmin.url}/sso"  # ha-garmin's own sessions are not routed

    def own_login() -> None:
        with Wire(settings, "u1").active():  # only to skip its pauses
            auth.login("a@x", "pw")

    with pytest.raises(Exception, match="rate limited"):
        await asyncio.to_thread(own_login)
    assert credential_posts(garmin) >= 5, credential_posts(garmin)


async def test_a_wrong_password_ends_the_login(garmin: FakeGarmin) -> None:
    garmin.signs_in(exp=LATER)
    garmin.on("POST", MOBILE_LOGIN,
              Answer(json={"responseStatus": {"type": "INVALID_USERNAME_PASSWORD"}}))
    with pytest.raises(InvalidCredentials):
        await asyncio.to_thread(DiEngine(garmin.settings()).login, "u1", "a@x", "bad")
    assert credential_posts(garmin) == 1


async def test_a_firewall_page_moves_on_to_the_next_strategy(garmin: FakeGarmin) -> None:
    garmin.signs_in(exp=LATER)
    garmin.on("GET", MOBILE_SIGN_IN,
              Answer(status=403, text="<html><title>Just a moment...</title></html>"),
              Answer(text=SIGN_IN_PAGE))
    result = await asyncio.to_thread(DiEngine(garmin.settings()).login, "u1", "a@x", "pw")
    assert result.session is not None
    assert credential_posts(garmin) == 1


@pytest.mark.parametrize("page", [
    Answer(status=502, text="<html><title>502 Bad Gateway</title></html>"),
    Answer(status=403, text="<html><title>Just a moment...</title></html>"),
    Answer(status=404, text="{}"),
], ids=["502", "firewall-403", "404"])
async def test_no_credentials_are_posted_after_a_sign_in_page_garmin_did_not_serve(
        garmin: FakeGarmin, page: Answer) -> None:
    """ha-garmin posts the credentials after a 5xx sign-in page (after a portal 403 too):
    without the page's cookies Garmin answers that POST 429, blocking the account."""
    garmin.signs_in(exp=LATER)
    garmin.on("GET", MOBILE_SIGN_IN, page)
    garmin.on("GET", PORTAL_SIGN_IN, page)
    with pytest.raises(GarminUnavailable if page.status != 404 else GarminProtocolError):
        await asyncio.to_thread(DiEngine(garmin.settings()).login, "u1", "a@x", "pw")
    assert credential_posts(garmin) == 0
    assert [(r.method, r.path) for r in garmin.received] == (
        [("GET", MOBILE_SIGN_IN)] * 2 + [("GET", PORTAL_SIGN_IN)] * 2)


async def test_only_the_configured_strategies_run(garmin: FakeGarmin) -> None:
    garmin.signs_in(exp=LATER)
    garmin.on("POST", PORTAL_LOGIN, Answer(status=503, text="down"))
    engine = DiEngine(garmin.settings(di_strategies=("portal+requests",)))
    with pytest.raises(GarminUnavailable):
        await asyncio.to_thread(engine.login, "u1", "a@x", "pw")
    assert len(garmin.posts(PORTAL_LOGIN)) == 1 and garmin.posts(MOBILE_LOGIN) == []
    with pytest.raises(ValueError, match="unknown DI sign-in strategies"):
        DiEngine(GarminSettings(di_strategies=("widget+cffi",)))


@pytest.mark.parametrize(("domain", "first", "then"), [
    ("garmin.com", MOBILE_LOGIN, PORTAL_LOGIN), ("garmin.cn", PORTAL_LOGIN, MOBILE_LOGIN)])
async def test_the_default_strategies_run_in_ha_garmins_order_for_the_domain(
    garmin: FakeGarmin, domain: str, first: str, then: str
) -> None:
    """garmin.cn's sign-in has no mobile endpoint: as in ha-garmin's `GarminAuth.login`,
    the portal strategies come first there. A configured order wins on either domain."""
    garmin.signs_in(exp=LATER)
    garmin.on("POST", MOBILE_LOGIN, Answer(status=503, text="down"))
    garmin.on("POST", PORTAL_LOGIN, Answer(status=503, text="down"))
    with pytest.raises(GarminUnavailable):
        await asyncio.to_thread(DiEngine(garmin.settings(domain=domain)).login,
                                "u1", "a@x", "pw")
    posted = [r.path for r in garmin.received if r.path in (MOBILE_LOGIN, PORTAL_LOGIN)]
    assert posted == [first, first, then, then]

    garmin.received.clear()
    chosen = DiEngine(garmin.settings(domain=domain, di_strategies=("mobile+requests",)))
    with pytest.raises(GarminUnavailable):
        await asyncio.to_thread(chosen.login, "u1", "a@x", "pw")
    assert [r.path for r in garmin.received if r.method == "POST"] == [MOBILE_LOGIN]


async def test_the_login_deadline_bounds_requests_and_pauses(garmin: FakeGarmin) -> None:
    garmin.signs_in(exp=LATER)
    engine = DiEngine(garmin.settings(login_timeout_seconds=0))
    with pytest.raises(GarminUnavailable) as caught:
        await asyncio.to_thread(engine.login, "u1", "a@x", "pw")
    assert caught.value.timeout and garmin.received == []

    pauses: list[float] = []
    engine = DiEngine(garmin.settings(di_login_delays=True), sleep=pauses.append)
    assert (await asyncio.to_thread(engine.login, "u1", "a@x", "pw")).session is not None
    assert len(pauses) == 1 and 2.0 <= pauses[0] <= 5.0  # ha-garmin's mobile pause, taken


async def test_the_proxy_carries_every_request(garmin: FakeGarmin) -> None:
    """With `proxy_url`, the sign-in (curl_cffi and requests) and data calls go through it:
    the base URL itself is unreachable, the proxy (the fake) answers."""
    garmin.signs_in(exp=LATER)
    garmin.on("GET", PROFILE, Answer(json={"displayName": "a"}))
    unreachable = "http://127.0.0.1:9"
    for strategy in ("mobile+cffi", "mobile+requests"):
        settings = garmin.settings(base_url=unreachable, proxy_url=garmin.url,
                                   di_strategies=(strategy,))
        engine = DiEngine(settings)
        result = await asyncio.to_thread(engine.login, "u1", "a@x", "pw")
        assert result.session is not None
        api = engine.session("u1", result.session)
        assert await asyncio.to_thread(api.get, "/userprofile-service/socialProfile") == {
            "displayName": "a"}
    assert "proxy" not in repr(settings)


def test_every_url_attribute_the_engine_points_is_ha_garmins() -> None:
    fresh = new_auth(GarminSettings())
    assert all(isinstance(getattr(fresh, name), str) for name in URL_ATTRIBUTES)
    other = new_auth(GarminSettings(domain="example.test"))
    assert other._di_token_url == "https://diauth.example.test/di-oauth2-service/oauth/token"


def test_stored_sessions_name_their_engine() -> None:
    assert engine_of("eyJvYXV0aDEiOiB7fX0=") == "garth"  # garth's base64 dump
    assert engine_of('{"v": 1, "cookies": []}') == "garth"  # garth's MFA challenge
    assert engine_of(stored(jwt(LATER))) == "di"
    assert engine_of("{not json") == "garth"


# -- a stored session in use -----------------------------------------------------------


def refresh_answers(garmin: FakeGarmin, answer: Answer) -> None:
    garmin.on("POST", TOKEN, answer)


async def test_an_expired_token_is_refreshed_once_and_the_rotation_is_kept(
        garmin: FakeGarmin) -> None:
    new_access = jwt(LATER, subject="second")
    refresh_answers(garmin, tokens(new_access, "r2"))
    garmin.on("GET", PROFILE, Answer(json={"displayName": "a"}))
    told: list[bool] = []
    engine = DiEngine(garmin.settings(on_refresh=told.append))
    api = engine.session("u1", stored(jwt(PAST), "r1"))
    for _ in range(2):
        await asyncio.to_thread(api.get, "/userprofile-service/socialProfile")
    [refresh] = garmin.posts(TOKEN)
    assert refresh.form["grant_type"] == "refresh_token" and refresh.form["refresh_token"] == "r1"
    assert api.refreshed and told == [True]
    written = json.loads(api.refreshed_session() or "{}")
    assert written["refresh_token"] == "r2" and written["access_token"] == new_access
    assert written["expires_at"] == LATER
    profile_calls = [r for r in garmin.received if r.path == PROFILE]
    assert all(r.headers["Authorization"] == f"Bearer {new_access}" for r in profile_calls)


async def test_a_token_far_from_expiry_is_not_refreshed(garmin: FakeGarmin) -> None:
    garmin.on("GET", PROFILE, Answer(json={}))
    api = DiEngine(garmin.settings()).session("u1", stored(jwt(int(time.time()) + 600)))
    await asyncio.to_thread(api.get, "/userprofile-service/socialProfile")
    assert garmin.posts(TOKEN) == [] and not api.refreshed and api.refreshed_session() is None


@pytest.mark.parametrize(("answer", "error", "transient"), [
    (Answer(status=400, json={"error": "invalid_grant"}), AuthRejected, False),
    (Answer(status=503, text="<html><title>503</title></html>"), GarminUnavailable, True),
    (Answer(status=429, json={}, headers={"Retry-After": "30"}), RateLimited, True),
])
async def test_refresh_failures_are_told_apart_by_garmins_answer(
        garmin: FakeGarmin, answer: Answer, error: type[Exception], transient: bool) -> None:
    refresh_answers(garmin, answer)
    told: list[bool] = []
    api = DiEngine(garmin.settings(on_refresh=told.append)).session("u1", stored(jwt(PAST)))
    with pytest.raises(error) as caught:
        await asyncio.to_thread(api.get, "/userprofile-service/socialProfile")
    assert caught.value.transient is transient  # type: ignore[attr-defined]
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 30
    assert told == [False] and api.refreshed_session() is None
    with pytest.raises(GarminUnavailable, match="parallel call"):  # never a second refresh
        await asyncio.to_thread(api.get, "/userprofile-service/socialProfile")
    assert len(garmin.posts(TOKEN)) == 1


async def test_a_refresh_timeout_is_transient(garmin: FakeGarmin) -> None:
    refresh_answers(garmin, Answer(hang=True))
    api = DiEngine(garmin.settings(timeout_seconds=0.2)).session("u1", stored(jwt(PAST)))
    with pytest.raises(GarminUnavailable) as caught:
        await asyncio.to_thread(api.get, "/userprofile-service/socialProfile")
    assert caught.value.timeout and api.refreshed_session() is None


async def test_a_reused_refresh_token_is_rejected(garmin: FakeGarmin) -> None:
    """Rotation with reuse detection: the session stored before a refresh is dead after it."""
    issued = {"r1": "r2"}

    def rotate(request: Received) -> Answer:
        new = issued.pop(request.form["refresh_token"], None)
        if new is None:
            return Answer(status=400, json={"error": "invalid_grant"})
        return tokens(jwt(LATER), new)

    refresh_answers(garmin, rotate)
    garmin.on("GET", PROFILE, Answer(json={}))
    engine = DiEngine(garmin.settings())
    old = stored(jwt(PAST), "r1")
    first = engine.session("u1", old)
    await asyncio.to_thread(first.get, "/userprofile-service/socialProfile")
    assert json.loads(first.refreshed_session() or "{}")["refresh_token"] == "r2"
    with pytest.raises(AuthRejected):
        await asyncio.to_thread(engine.session("u1", old).get,
                                "/userprofile-service/socialProfile")


async def test_a_401_token_not_active_refreshes_once_then_rejects(garmin: FakeGarmin) -> None:
    inactive = Answer(status=401, json={"message": "Token is not active"})
    garmin.on("GET", PROFILE, inactive, Answer(json={"ok": 1}))
    refresh_answers(garmin, tokens(jwt(LATER), "r2"))
    engine = DiEngine(garmin.settings())
    api = engine.session("u1", stored(jwt(LATER)))
    assert await asyncio.to_thread(api.get, "/userprofile-service/socialProfile") == {"ok": 1}
    assert len(garmin.posts(TOKEN)) == 1 and api.refreshed

    garmin.on("GET", PROFILE, inactive)
    again = engine.session("u2", stored(jwt(LATER)))
    with pytest.raises(AuthRejected):
        await asyncio.to_thread(again.get, "/userprofile-service/socialProfile")
    assert len(garmin.posts(TOKEN)) == 2  # one refresh per use, then the verdict
    assert json.loads(again.refreshed_session() or "{}")["refresh_token"] == "r2"


async def test_parallel_users_never_carry_each_others_token(garmin: FakeGarmin) -> None:
    """16 users, each a session in use from several threads at once, half of them
    refreshing: every data call carries its own user's token."""
    users = [f"user-{i}" for i in range(16)]
    refreshed_to = {user: jwt(LATER, subject=f"{user}-new") for user in users}

    def rotate(request: Received) -> Answer:
        user = request.headers["X-Sandbox-Caller"]
        return tokens(refreshed_to[user], f"{user}-r2")

    refresh_answers(garmin, rotate)
    garmin.on("GET", PROFILE, Answer(json={}))
    engine = DiEngine(garmin.settings(), pool_size=32)
    tokens_of = {user: jwt(PAST if i % 2 else LATER, subject=user)
                 for i, user in enumerate(users)}
    apis = {user: engine.session(user, stored(tokens_of[user], f"{user}-r1")) for user in users}
    await asyncio.gather(*(asyncio.to_thread(apis[user].get, "/userprofile-service/socialProfile")
                           for user in users for _ in range(4)))
    calls = [r for r in garmin.received if r.path == PROFILE]
    assert len(calls) == 64
    allowed = {user: {f"Bearer {tokens_of[user]}", f"Bearer {refreshed_to[user]}"}
               for user in users}
    crossed = [r for r in calls
               if r.headers["Authorization"] not in allowed[r.headers["X-Sandbox-Caller"]]]
    assert crossed == []
    assert len(garmin.posts(TOKEN)) == 8  # one refresh per refreshing user, not per call
