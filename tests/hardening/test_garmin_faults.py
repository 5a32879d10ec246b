"""Garmin misbehaving under the service: hangs, resets, truncated JSON, HTML error pages and
a 429 storm, injected by the sandbox.

What must hold whatever Garmin does: no retry storm (each operation makes a bounded number of
Garmin calls, counted per caller in the sandbox's record), the event loop keeps answering
while Garmin calls hang in their threads, nothing stored is lost, and every answer is a
problem+json 4xx/5xx or a 200 saying `checked: unavailable`, never a 500.

The Garmin client runs with the shipped retry policy (`garmin.retries: 2`: connection errors
and 502-504 on GET only) and a 1 s timeout, so a hang outlives it.

Every scenario runs with both engines. Their data calls, status checks and sync jobs meet a
fault the same way; their logins differ, and the login test spells out what each sends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.keys import GATEWAY
from service.models import Activity, DailyHealth, SyncCursor
from service.sandbox import Fault
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import (
    ENGINES,
    Api,
    Sandbox,
    both_engines,
    connect,
    raw_rows,
    sync_now,
    use_db,
)
from tests.support.faults import Traffic, not_a_500, problem
from tests.support.waiting import eventually

USER = "user-1"
ACCOUNT = "alice@example.com"
RETRIES = 2  # the shipped `garmin.retries`
TIMEOUT = 1.0

PROFILE = ("GET", "/connectapi/userprofile-service/socialProfile")
ACTIVITY_SEARCH = ("GET", "/connectapi/activitylist-service/activities/search/activities")

# garth's sign-in: one flow, its steps in order
SIGN_IN = ("GET", "/sso/mobile/sso/en/sign-in")
LOGIN_POST = ("POST", "/sso/mobile/api/login")
EMBED = ("GET", "/sso/portal/sso/embed")
PREAUTHORIZED = ("GET", "/connectapi/oauth-service/oauth/preauthorized")
EXCHANGE = ("POST", "/connectapi/oauth-service/oauth/exchange/user/2.0")
LOGIN_STEPS = [SIGN_IN, LOGIN_POST, EMBED, PREAUTHORIZED, EXCHANGE]

# DI's sign-in: the default strategies (`garmin.di_strategies`) in order, each a flow of
# three steps sent over HTTP of its own (curl_cffi or requests)
DI_SIGN_IN = ("GET", "/sso/mobile/sso/en_US/sign-in")
DI_LOGIN_POST = ("POST", "/sso/mobile/api/login")
DI_TOKEN = ("POST", "/diauth/di-oauth2-service/oauth/token")
DI_FLOWS = {
    "mobile": (DI_SIGN_IN, DI_LOGIN_POST, DI_TOKEN),
    "portal": (("GET", "/sso/portal/sso/en-US/sign-in"), ("POST", "/sso/portal/api/login"),
               DI_TOKEN),
}
DI_STRATEGIES = (("mobile", "cffi"), ("mobile", "requests"), ("portal", "cffi"),
                 ("portal", "requests"))
DI_CLIENT_IDS = 4  # ha-garmin 0.1.53 offers a service ticket to each of its DI client ids


# name: (fault, how many times one GET meets it, how the API reports it at login)
FAULTS: dict[str, tuple[Fault, int, tuple[int, str]]] = {
    "hang": (Fault(hang_seconds=TIMEOUT + 0.5), 1, (503, "garmin-unavailable")),
    "reset": (Fault(reset=True), 1, (503, "garmin-unavailable")),
    "truncated-json": (Fault(truncated=True), 1, (502, "garmin-bad-response")),
    "html-page": (Fault(html=True), 1, (502, "garmin-bad-response")),
    "html-502": (Fault(html=True, status=502), 1 + RETRIES, (503, "garmin-unavailable")),
    "429": (Fault(status=429, retry_after=120), 1, (429, "garmin-rate-limited")),
}
# engine -> login step -> the sandbox scopes faulted: every flow the engine may try
LOGIN_SCOPES: dict[str, dict[str, tuple[str, ...]]] = {
    "garth": {"signin": ("signin",), "login": ("login",), "preauthorized": ("preauthorized",),
              "exchange": ("exchange",)},
    "di": {"signin": ("signin", "portal_signin"), "login": ("login", "portal_login"),
           "exchange": ("di_token",)},
}
DI_STEP_INDEX = {"signin": 0, "login": 1, "exchange": 2}


engine = both_engines


@pytest.fixture
def traffic(sandbox: Sandbox) -> Traffic:
    return Traffic(sandbox.state)


@pytest.fixture
async def gapi(make_config: MakeConfig, start_api: StartApi) -> Api:
    return await start_api(make_config(garmin={"retries": RETRIES, "timeout_seconds": TIMEOUT}))


async def _session(api: Api, user: str = USER) -> dict[str, Any]:
    rows = [row for row in await raw_rows(api) if row["user_id"] == user]
    assert len(rows) == 1, rows
    row = rows[0]
    return {key: row[key] for key in ("session_data", "version", "status", "last_validated",
                                       "connected_at")}


async def _stored_data(api: Api, user: str = USER) -> dict[str, Any]:
    use_db(api)
    return {
        "activities": sorted(await Activity.filter(user_id=user).values_list(
            "garmin_activity_id", "updated_at")),
        "days": sorted(await DailyHealth.filter(user_id=user).values_list(
            "calendar_date", "updated_at")),
        "synced": sorted(await SyncCursor.filter(user_id=user).values_list(
            "kind", "last_synced_date", "last_success_at")),
    }


def _requests(calls: list[tuple[str, str, int | None]]) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _status in calls]


def _di_login_sends(name: str, step: str) -> list[tuple[str, str]]:
    """What a DI login sends when fault `name` meets `step` of every flow: each strategy in
    turn runs its steps up to the failed one, and a 429 ends the login."""
    sent: list[tuple[str, str]] = []
    for flow, http in DI_STRATEGIES:
        steps = list(DI_FLOWS[flow][:DI_STEP_INDEX[step] + 1])
        if step == "signin" and name in ("truncated-json", "html-page"):
            # ha-garmin reads only cookies from a sign-in page answered 200, then posts the
            # credentials (the sandbox refuses them: no sign-in cookie)
            steps.append(DI_FLOWS[flow][1])
        if step == "exchange" and name in ("truncated-json", "html-page", "html-502"):
            # an answer without a token sends the ticket on to ha-garmin's next client id
            steps += [DI_TOKEN] * (DI_CLIENT_IDS - 1)
        if step == "login" and name == "reset" and http == "cffi":
            # libcurl resends a request once when the connection it reused dies unanswered
            steps.append(steps[-1])
        sent += steps
        if name == "429":
            break
    return sent


# --- one operation under each fault: bounded calls, a proper answer, nothing lost --------


@pytest.mark.parametrize("name", list(FAULTS))
async def test_status_check_under_fault_answers_unavailable_with_bounded_calls(
    gapi: Api, sandbox: Sandbox, traffic: Traffic, name: str
) -> None:
    fault, per_get, _login = FAULTS[name]
    await connect(gapi, sandbox, USER, ACCOUNT)
    before = await _session(gapi)
    mark = await traffic.mark()
    sandbox.state.set_fault(ACCOUNT, "api", fault)

    response = await gapi.status(USER, refresh=True)

    status, body = await not_a_500(response)
    assert status == 200
    assert (body["status"], body["checked"]) == ("VALID", "unavailable")
    assert _requests(await traffic.since(mark, USER)) == [PROFILE] * per_get
    assert await _session(gapi) == before


@pytest.mark.parametrize("name", list(FAULTS))
async def test_sync_job_under_fault_stops_after_bounded_calls_and_keeps_stored_data(
    gapi: Api, sandbox: Sandbox, traffic: Traffic, name: str
) -> None:
    fault, per_get, _login = FAULTS[name]
    await connect(gapi, sandbox, USER, ACCOUNT)
    assert [job["status"] for job in await sync_now(gapi, USER, "activities")] == ["SUCCESS"]
    session, data = await _session(gapi), await _stored_data(gapi)
    assert data["activities"]
    mark = await traffic.mark()
    sandbox.state.set_fault(ACCOUNT, "api", fault)

    jobs = await sync_now(gapi, USER, "activities")

    expected = "RATE_LIMITED" if name == "429" else "FAILED"
    assert [(job["status"], job["items_upserted"]) for job in jobs] == [(expected, 0)], jobs
    assert _requests(await traffic.since(mark, USER)) == [ACTIVITY_SEARCH] * per_get
    assert await _stored_data(gapi) == data
    assert await _session(gapi) == session
    use_db(gapi)
    cursor = await SyncCursor.get(user_id=USER, kind="activities")
    assert cursor.consecutive_failures == 1
    assert cursor.backoff_until is not None and cursor.backoff_until > datetime.now(UTC)


@pytest.mark.parametrize(("engine", "step"), [
    (engine, step) for engine in ENGINES for step in LOGIN_SCOPES[engine]])
@pytest.mark.parametrize("name", list(FAULTS))
async def test_login_under_fault_sends_each_sso_step_at_most_once_and_keeps_the_session(
    gapi: Api, sandbox: Sandbox, traffic: Traffic, engine: str, step: str, name: str
) -> None:
    """A re-login while Garmin misbehaves at one sign-in step (of every flow the engine may
    try): the session the user already had is kept and the caller learns what went wrong.

    garth's SSO steps run in order and stop at the failure; a POST is never repeated, a GET
    only on 502-504 and at most `retries` times. DI's strategies each run their steps up to
    the failure and hand over to the next, as `_di_login_sends` spells out; a 429 ends it."""
    fault, per_get, (status, slug) = FAULTS[name]
    await connect(gapi, sandbox, USER, ACCOUNT)
    before = await _session(gapi)
    mark = await traffic.mark()
    for scope in LOGIN_SCOPES[engine][step]:
        sandbox.state.set_fault(ACCOUNT, scope, dataclasses.replace(fault))

    response = await gapi.login(USER, ACCOUNT)

    await not_a_500(response)
    await problem(response, status, slug)
    sent = _requests(await traffic.since(mark, USER))
    if engine == "di":
        assert sent == _di_login_sends(name, step), sent
    else:
        steps = list(dict.fromkeys(sent))
        assert steps == LOGIN_STEPS[:len(steps)], sent  # in order, none skipped, none after
        for request in steps:
            repeats = sent.count(request)
            assert repeats == 1 or (request[0] == "GET" and repeats <= 1 + RETRIES), sent
        if per_get == 1:
            assert sent == steps, sent
    after = await _session(gapi)
    assert (after["session_data"], after["status"]) == (before["session_data"], "VALID")


async def test_login_with_the_mobile_sign_in_down_moves_to_the_portal_with_di_only(
    gapi: Api, sandbox: Sandbox, traffic: Traffic, engine: str
) -> None:
    """The mobile sign-in page drops every connection, the portal's works: garth has no other
    flow and keeps the session it had; DI's portal strategies sign in and replace it."""
    await connect(gapi, sandbox, USER, ACCOUNT)
    before = await _session(gapi)
    mark = await traffic.mark()
    sandbox.state.set_fault(ACCOUNT, "signin", Fault(reset=True))

    response = await gapi.login(USER, ACCOUNT)

    sent = _requests(await traffic.since(mark, USER))
    after = await _session(gapi)
    if engine == "garth":
        await problem(response, 503, "garmin-unavailable")
        assert sent == [SIGN_IN], sent
        assert after == before
    else:
        assert response.status == 200, await response.text()
        # both mobile strategies meet the reset, the first portal one signs in
        assert sent == [DI_SIGN_IN] * 2 + list(DI_FLOWS["portal"]), sent
        assert after["session_data"] != before["session_data"]
        assert (after["version"], after["status"]) == (before["version"] + 1, "VALID")


# --- the event loop while Garmin calls hang ----------------------------------------------


async def test_event_loop_answers_while_sixteen_status_checks_hang_in_garmin_threads(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi, traffic: Traffic
) -> None:
    """16 users' live status checks hang at Garmin for `hang` seconds, filling the whole
    thread pool; probes and database-only calls answer in a small fraction of that."""
    hang, threads = 2.0, 16
    api = await start_api(make_config(garmin={"retries": RETRIES, "timeout_seconds": hang * 3,
                                              "executor_threads": threads}))
    users = [(f"user-{index}", f"user{index}@example.com") for index in range(threads)]
    for user, username in users:
        await connect(api, sandbox, user, username)
        sandbox.state.set_fault(username, "api", Fault(hang_seconds=hang, times=1))
    arrived = traffic.arrived
    gateway = api.app[GATEWAY]

    checks = [asyncio.ensure_future(api.status(user, refresh=True)) for user, _ in users]
    await eventually(lambda: traffic.arrived - arrived == threads and gateway.busy_threads
                     == threads, timeout=hang)  # every thread is blocked inside Garmin
    hung_at = time.perf_counter()

    timings: dict[str, float] = {}
    for name, path, headers in (
        ("healthz", "/healthz", None),
        ("readyz", "/readyz", None),
        ("jobs", "/api/v1/garmin/sync/jobs", api.headers(users[0][0])),
    ):
        started = time.perf_counter()
        response = await api.client.get(path, headers=headers)
        timings[name] = time.perf_counter() - started
        assert response.status == 200, (name, await response.text())
    answered_within = time.perf_counter() - hung_at

    assert not any(check.done() for check in checks)  # all answered before any hang ended
    assert answered_within / hang < 0.5, timings
    assert timings["healthz"] / hang < 0.1, timings
    for check in checks:
        response = await check
        assert response.status == 200
        assert (await response.json())["checked"] == "live"


# --- a 429 storm on every account ---------------------------------------------------------


def _storm(sandbox: Sandbox) -> None:
    """Garmin answers 429 to every account's login, token exchange and API call, in every
    flow of both engines."""
    for scope in ("login", "portal_login", "exchange", "di_token", "di_refresh", "api"):
        sandbox.state.set_fault(None, scope, Fault(status=429, retry_after=120))


async def _connect_all(api: Api, sandbox: Sandbox, count: int) -> list[str]:
    users = [f"user-{index}" for index in range(count)]
    for index, user in enumerate(users):
        await connect(api, sandbox, user, f"user{index}@example.com")
    return users


async def test_429_storm_sync_jobs_make_one_call_each_then_back_off(
    gapi: Api, sandbox: Sandbox, traffic: Traffic
) -> None:
    users = await _connect_all(gapi, sandbox, 4)
    before = {user: (await _session(gapi, user), await _stored_data(gapi, user))
              for user in users}
    mark = await traffic.mark()
    _storm(sandbox)
    started = datetime.now(UTC)

    results = await asyncio.gather(*(sync_now(gapi, user) for user in users))

    for user, jobs in zip(users, results, strict=True):
        assert sorted((job["kind"], job["status"]) for job in jobs) == [
            ("activities", "RATE_LIMITED"), ("health", "RATE_LIMITED")], jobs
        sent = await traffic.since(mark, user)
        # one call per job, each answered 429: the activity search, the health job's profile
        assert sorted(sent) == sorted([(*ACTIVITY_SEARCH, 429), (*PROFILE, 429)]), sent
        assert (await _session(gapi, user), await _stored_data(gapi, user)) == before[user]
        use_db(gapi)
        for cursor in await SyncCursor.filter(user_id=user):
            assert cursor.backoff_until is not None
            assert cursor.backoff_until >= started + timedelta(seconds=120)


async def test_429_storm_status_checks_make_one_call_each_and_answer_unavailable(
    gapi: Api, sandbox: Sandbox, traffic: Traffic
) -> None:
    users = await _connect_all(gapi, sandbox, 4)
    before = {user: await _session(gapi, user) for user in users}
    mark = await traffic.mark()
    _storm(sandbox)

    responses = await asyncio.gather(*(gapi.status(user, refresh=True) for user in users))

    for user, response in zip(users, responses, strict=True):
        status, body = await not_a_500(response)
        assert (status, body["checked"]) == (200, "unavailable")
        assert await traffic.since(mark, user) == [(*PROFILE, 429)]
        assert await _session(gapi, user) == before[user]


async def test_429_storm_logins_post_once_then_cool_down_without_calling_garmin(
    gapi: Api, sandbox: Sandbox, traffic: Traffic, engine: str
) -> None:
    users = await _connect_all(gapi, sandbox, 4)
    before = {user: await _session(gapi, user) for user in users}
    mark = await traffic.mark()
    _storm(sandbox)

    first = await asyncio.gather(*(
        gapi.login(user, f"user{index}@example.com") for index, user in enumerate(users)))
    for user, response in zip(users, first, strict=True):
        body = await problem(response, 429, "garmin-rate-limited")
        assert int(response.headers["Retry-After"]) >= 120, body
        sign_in, post = {"garth": (SIGN_IN, LOGIN_POST), "di": (DI_SIGN_IN, DI_LOGIN_POST)}[engine]
        assert await traffic.since(mark, user) == [(*sign_in, 200), (*post, 429)]

    mark = await traffic.mark()
    again = await asyncio.gather(*(
        gapi.login(user, f"user{index}@example.com") for index, user in enumerate(users)))
    for user, response in zip(users, again, strict=True):
        await problem(response, 429, "login-cooldown")
        assert await traffic.since(mark, user) == []
        after = await _session(gapi, user)
        assert (after["session_data"], after["status"]) == (before[user]["session_data"],
                                                           "VALID")
