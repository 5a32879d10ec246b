"""Cross-user isolation on every /api/v1 route: user B never sees or changes user A's state.

User A is connected through the sandbox and has synced both kinds of data (and met one
failed health sync), with webhooks on and every event delivered, so A owns rows in every
table. User B then calls each route with B's own X-User-Id (and the same, shared API key).
After every call A's raw rows in all tables are compared with a snapshot taken before: the
auth row, activities, daily health, cursors, jobs, the lease row and the webhook outbox
(events, deliveries, sequence, the failure count), value for value.

The operator routes (`/api/v1/webhooks/...`) act on no one user: any key holder is an
operator and sees every user's deliveries (ids, types, statuses; never a payload). For them
the matrix checks that B's call changes none of A's rows; A's ids may appear in the answer.

The matrix is keyed by the app router's own (method, path) pairs and a test enumerates
`app.router.routes()`, so a route added later without an entry here fails the suite.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.typedefs import LooseHeaders
from multidict import CIMultiDict
from tortoise.models import Model

import service.models
from service.api.middleware import USER_ID_HEADER
from service.config import Config
from service.models import AccountCooldown, DeliveryStatus, WebhookDelivery
from service.sandbox import Fault
from tests.support.aliases import StartApi
from tests.support.app import API_KEY, TABLES, Api, Sandbox, connect, drain, sync_now, use_db
from tests.support.waiting import eventually
from tests.support.webhooks import Receiver, new_secret

A, B = "user-a", "user-b"
ALICE = "alice@example.com"
PASSWORD = "pw-correct-horse"
OTHER_KEY = "second-service-key-0123456789"
PREFIX = "/api/v1"
PROBLEM_JSON = "application/problem+json"
AUTH_ROW = "garmin_authentication_state"
DATA_TABLES = ("activity", "daily_health", "sync_job")
# what B's own `session.connected` writes
EVENT_TABLES = ("webhook_event", "webhook_delivery", "webhook_user_sequence")
MODELS: dict[str, type[Model]] = {
    model._meta.db_table: model
    for model in vars(service.models).values()
    if isinstance(model, type) and issubclass(model, Model) and model is not Model
}
# keyed by Garmin account, not by user id: every user id signing in to one account shares it
ACCOUNT_TABLES = ("garmin_account_cooldown",)
USER_TABLES = tuple(table for table in TABLES if table not in ACCOUNT_TABLES)


# --- what the tests send and read -------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    def problem_type(self) -> str:
        assert self.headers.get("Content-Type", "").startswith(PROBLEM_JSON), self.text
        return str(self.json()["type"]).rsplit("/", 1)[-1]


async def send(api: Api, method: str, path: str, headers: LooseHeaders,
               request: Mapping[str, Any] | None = None) -> Reply:
    kwargs = dict(request or {})
    response = await api.client.request(method, path, headers=headers, **kwargs)
    text = await response.text()
    return Reply(response.status, dict(response.headers), text)


Rows = dict[str, list[dict[str, Any]]]


async def rows_by_user(api: Api) -> dict[str, Rows]:
    """Every row of every per-user table, as the database holds it, grouped by user id."""
    use_db(api)
    grouped: dict[str, Rows] = {}
    for table in USER_TABLES:
        model = MODELS[table]
        for row in await model.all().order_by(model._meta.pk_attr).values():
            grouped.setdefault(row["user_id"], {name: [] for name in USER_TABLES}
                               )[table].append(row)
    return grouped


@dataclass(frozen=True)
class Seen:
    """What A's own calls returned, for B to replay (paging cursors, A's dates and types)."""

    jobs_cursor: str
    activities_cursor: str
    activity_type: str
    first_day: str
    last_day: str
    activity_ids: tuple[int, ...]


@dataclass
class World:
    api: Api
    seen: Seen
    before: dict[str, Rows]


# --- the matrix -------------------------------------------------------------------------

Requests = Callable[[Seen], list[dict[str, Any]]]
Check = Callable[[Reply], None]


def empty_page(reply: Reply) -> None:
    assert reply.status == 200, reply.text
    assert reply.json() == {"items": [], "next_cursor": None}


def empty_days(reply: Reply) -> None:
    assert reply.status == 200, reply.text
    assert reply.json() == {"items": []}


def missing_status(reply: Reply) -> None:
    assert reply.status == 200, reply.text
    assert reply.json() == {
        "status": "MISSING", "checked": "none", "last_validated": None, "connected_at": None,
        "mfa_pending": False, "mfa_expires_at": None, "reason": None, "engine": None,
        "sync": {},
    }


def problem(status: int, kind: str) -> Check:
    def check(reply: Reply) -> None:
        assert reply.status == status, reply.text
        assert reply.problem_type() == kind, reply.text

    return check


def login_as_b(reply: Reply) -> None:
    # A's real credentials (B's own session), then a wrong password (B's row only)
    if reply.status == 422:
        assert reply.problem_type() == "garmin-invalid-credentials"
    else:
        assert (reply.status, reply.json()) == (200, {"status": "SUCCESS"}), reply.text


def spec(reply: Reply) -> None:
    assert reply.status == 200, reply.text
    assert reply.json()["openapi"].startswith("3.")


def nonempty_items(reply: Reply) -> None:
    assert reply.status == 200, reply.text
    assert reply.json()["items"], reply.text


def valid_status(reply: Reply) -> None:
    assert reply.status == 200, reply.text
    assert reply.json()["status"] == "VALID", reply.text


def status_is(status: int) -> Check:
    def check(reply: Reply) -> None:
        assert reply.status == status, reply.text

    return check


@dataclass(frozen=True)
class Case:
    """How to call one route, what B must get, and what the owner (A) gets instead.

    `requests` are B's variants (the first one also serves the key and user-id gate tests);
    `b_may_own` the tables where B's call may leave B's own rows; `a_check` the answer A
    gets with the same key on the same request (the positive control); `order` runs reads
    before writes and the disconnect last when one test calls every route as A.
    """

    requests: Requests
    check_b: Check
    a_check: Check
    b_may_own: frozenset[str] = frozenset()
    public: bool = False
    order: int = 0
    head_of: str | None = None
    operator: bool = False  # the API key alone; no user id


def head(get_path: str) -> Case:
    """HEAD runs the GET handler without a body: B's Content-Length must be B's GET's."""
    get = MATRIX_GETS[get_path]
    return Case(get.requests, get.check_b, get.a_check, get.b_may_own, get.public, get.order,
                head_of=get_path, operator=get.operator)


def _health_range(seen: Seen) -> list[dict[str, Any]]:
    return [{"params": {"from": seen.first_day, "to": seen.last_day}},
            {"params": {"from": "2000-01-01", "to": "2000-12-31"}}]


MATRIX_GETS: dict[str, Case] = {
    f"{PREFIX}/garmin/session/status": Case(
        lambda seen: [{}, {"params": {"refresh": "true"}}],
        missing_status, valid_status),
    f"{PREFIX}/garmin/sync/jobs": Case(
        lambda seen: [{}, {"params": {"limit": "500"}},
                      {"params": {"limit": "1", "cursor": seen.jobs_cursor}}],
        empty_page, nonempty_items),
    f"{PREFIX}/garmin/activities": Case(
        lambda seen: [{}, {"params": {"limit": "500", "type": seen.activity_type}},
                      {"params": {"since": seen.first_day, "until": "2100-01-01"}},
                      {"params": {"limit": "1", "cursor": seen.activities_cursor}}],
        empty_page, nonempty_items),
    f"{PREFIX}/garmin/health/daily": Case(_health_range, empty_days, nonempty_items),
    f"{PREFIX}/openapi.json": Case(lambda seen: [{}], spec, spec, public=True),
    f"{PREFIX}/webhooks/deliveries": Case(
        lambda seen: [{}, {"params": {"status": "delivered", "limit": "500"}}],
        nonempty_items, nonempty_items, operator=True),
}

MATRIX: dict[tuple[str, str], Case] = {
    ("POST", f"{PREFIX}/garmin/session/login"): Case(
        lambda seen: [{"json": {"username": ALICE, "password": PASSWORD}},
                      {"json": {"username": ALICE, "password": "not-" + PASSWORD}}],
        login_as_b, status_is(200),
        b_may_own=frozenset({AUTH_ROW, "sync_cursor", "user_lease", *EVENT_TABLES}),
        order=1),
    ("POST", f"{PREFIX}/garmin/session/mfa"): Case(
        lambda seen: [{"json": {"mfa_code": "123456"}}],
        problem(409, "no-pending-mfa"), problem(409, "no-pending-mfa"),
        b_may_own=frozenset({"user_lease"}), order=1),
    ("DELETE", f"{PREFIX}/garmin/session"): Case(
        lambda seen: [{}], status_is(204), status_is(204),
        b_may_own=frozenset({"user_lease"}), order=2),
    ("POST", f"{PREFIX}/garmin/sync"): Case(
        lambda seen: [{"json": {}}, {"json": {"kinds": ["activities", "health"]}}],
        problem(409, "no-session"), status_is(202), order=1),
    # the route's own path, with `{id}` in it, names no delivery; the operator tests in
    # tests/webhooks retry real ones
    ("POST", f"{PREFIX}/webhooks/deliveries/{{id}}/retry"): Case(
        lambda seen: [{}], problem(404, "not-found"), problem(404, "not-found"),
        operator=True),
    **{("GET", path): case for path, case in MATRIX_GETS.items()},
    **{("HEAD", path): head(path) for path in MATRIX_GETS},
}
ROUTES = sorted(MATRIX)
ROUTE_IDS = [f"{method} {path.removeprefix(PREFIX)}" for method, path in ROUTES]


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = Receiver(secrets=[new_secret()])
    await started.start()
    yield started
    await started.stop()


async def _nothing_pending() -> bool:
    return not await WebhookDelivery.filter(status=DeliveryStatus.PENDING).exists()


@pytest.fixture
async def world(receiver: Receiver, sandbox: Sandbox, make_config: Callable[..., Config],
                start_api: StartApi) -> World:
    # `receiver` first: set up before the app, so it stops after the app's dispatcher
    """A connected and synced (both kinds), with webhooks on; A owns rows in every table."""
    api = await start_api(make_config(
        sync={"backfill_days": 3}, auth={"api_keys": [API_KEY, OTHER_KEY]},
        webhooks={"enabled": True, "allow_private_targets": True, "poll_seconds": 0.05,
                  "endpoints": [{"id": "main", "url": receiver.url(),
                                 "secrets": list(receiver.secrets)}]}))
    await connect(api, sandbox, A, ALICE)
    jobs = await sync_now(api, A, "activities", "health")
    assert [job["status"] for job in jobs] == ["SUCCESS", "SUCCESS"], jobs
    # one failed health sync: A's failure count (below `failing_after`: no event)
    sandbox.state.set_fault(ALICE, "api", Fault(status=503))
    assert [job["status"] for job in await sync_now(api, A, "health")] == ["FAILED"]
    sandbox.state.clear_fault(ALICE, "api")
    # A's events delivered: the dispatcher writes none of A's rows from here on
    await eventually(lambda: len(receiver.delivered()) == 3, 30, "A's three events")
    use_db(api)
    await eventually(_nothing_pending, 30, "the deliveries to be recorded as delivered")
    as_a = Api.headers(A)
    jobs_page = (await send(api, "GET", f"{PREFIX}/garmin/sync/jobs", as_a,
                            {"params": {"limit": "1"}})).json()
    activities = (await send(api, "GET", f"{PREFIX}/garmin/activities", as_a,
                             {"params": {"limit": "1"}})).json()
    today = datetime.now(UTC).date()
    before = await rows_by_user(api)
    assert set(before) == {A}
    assert ({table: bool(rows) for table, rows in before[A].items()}
            == dict.fromkeys(USER_TABLES, True))
    seen = Seen(
        jobs_cursor=jobs_page["next_cursor"], activities_cursor=activities["next_cursor"],
        activity_type=activities["items"][0]["type"],
        first_day=(today - timedelta(days=5)).isoformat(),
        last_day=(today + timedelta(days=1)).isoformat(),
        activity_ids=tuple(row["garmin_activity_id"] for row in before[A]["activity"]),
    )
    assert seen.jobs_cursor and seen.activities_cursor
    return World(api, seen, before)


def a_markers(world: World) -> list[str]:
    """Strings that only A's data contains: none may appear in an answer to B."""
    return [A, ALICE, ALICE.split("@")[0], *(str(i) for i in world.seen.activity_ids)]


# --- the tests --------------------------------------------------------------------------


def test_the_matrix_covers_every_api_v1_route_of_the_router(api: Api) -> None:
    """A route added to the app without an entry in MATRIX fails here (and a stale entry)."""
    routed = {(route.method, route.resource.canonical) for route in api.app.router.routes()
              if route.resource is not None
              and route.resource.canonical.startswith(PREFIX + "/")}
    assert len(routed) >= 14
    assert sorted(routed - set(MATRIX)) == [], "routes without a cross-user matrix entry"
    assert sorted(set(MATRIX) - routed) == [], "matrix entries for routes that do not exist"
    assert set(MODELS) == set(TABLES)


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=ROUTE_IDS)
async def test_b_on_this_route_never_sees_or_changes_a_s_state(
    world: World, method: str, path: str
) -> None:
    api, case = world.api, MATRIX[(method, path)]
    for request in case.requests(world.seen):
        reply = await send(api, method, path, Api.headers(B), request)
        if case.head_of is None:
            case.check_b(reply)
        else:
            got = await send(api, "GET", path, Api.headers(B), request)
            case.check_b(got)
            assert (reply.status, reply.text) == (got.status, "")
            assert reply.headers["Content-Length"] == got.headers["Content-Length"]
        if case.public:
            as_a = await send(api, method, path, Api.headers(A), request)
            assert (reply.status, reply.text) == (as_a.status, as_a.text)
        elif not case.operator:
            assert [marker for marker in a_markers(world) if marker in reply.text] == []
        after = await rows_by_user(api)
        assert after[A] == world.before[A], f"{method} {path} {request} changed A's rows"
        assert set(after) <= {A, B}
        owned = {table for table, rows in after.get(B, {}).items() if rows}
        assert owned <= case.b_may_own, f"B's footprint {sorted(owned)}"
        # Garmin throttled none of B's calls: no Garmin account, A's included, cools down
        assert await AccountCooldown.all().count() == 0


async def test_b_logging_in_with_a_s_garmin_username_gets_b_s_own_row_only(
    world: World
) -> None:
    """Allowed: B's caller connected the same Garmin account for B. It is B's session, in
    B's row, sealed for B; A's row and data stay exactly as they were."""
    api = world.api
    assert (await api.login(B, ALICE, PASSWORD)).status == 200
    after = await rows_by_user(api)
    assert after[A] == world.before[A]
    a_row, b_row = after[A][AUTH_ROW][0], after[B][AUTH_ROW][0]
    assert b_row["user_id"] == B and b_row["id"] != a_row["id"]
    assert b_row["status"] == "VALID" and b_row["session_data"].startswith("gs1.")
    assert b_row["session_data"] != a_row["session_data"]
    assert [after[B][table] for table in DATA_TABLES] == [[], [], []]
    for route in ("activities", "sync/jobs"):
        empty_page(await send(api, "GET", f"{PREFIX}/garmin/{route}", Api.headers(B)))
    valid_status(await send(api, "GET", f"{PREFIX}/garmin/session/status", Api.headers(B)))
    a_live = (await send(api, "GET", f"{PREFIX}/garmin/session/status", Api.headers(A),
                         {"params": {"refresh": "true"}})).json()
    assert (a_live["status"], a_live["checked"]) == ("VALID", "live")


async def test_b_syncing_the_same_garmin_account_writes_only_b_s_rows(
    world: World
) -> None:
    """Same Garmin activity ids for two users: the upsert's key is (user, id), so B's sync
    inserts B's copies and never updates A's rows."""
    api = world.api
    assert (await api.login(B, ALICE, PASSWORD)).status == 200
    jobs = await sync_now(api, B, "activities", "health")
    assert [job["status"] for job in jobs] == ["SUCCESS", "SUCCESS"], jobs
    after = await rows_by_user(api)
    assert after[A] == world.before[A]
    b_ids = {row["garmin_activity_id"] for row in after[B]["activity"]}
    assert b_ids == set(world.seen.activity_ids)
    assert len(after[B]["daily_health"]) == len(world.before[A]["daily_health"])
    assert {job["user_id"] for job in after[B]["sync_job"]} == {B}


async def test_the_shared_api_key_with_b_s_user_id_is_just_b(world: World) -> None:
    """There is no per-user API key: `auth.api_keys` authenticates the calling service, and
    callers are trusted services. The X-User-Id header alone says whose data a request is
    about, and every query and write is scoped by it. So the very key A's requests carried,
    sent with B's user id, is simply B; and any configured key with A's id is A (which is
    why only trusted services may hold a key)."""
    api = world.api
    for key in (API_KEY, OTHER_KEY):
        missing_status(await send(api, "GET", f"{PREFIX}/garmin/session/status",
                                  Api.headers(B, key)))
        empty_page(await send(api, "GET", f"{PREFIX}/garmin/activities", Api.headers(B, key)))
        problem(409, "no-session")(await send(api, "POST", f"{PREFIX}/garmin/sync",
                                              Api.headers(B, key), {"json": {}}))
        valid_status(await send(api, "GET", f"{PREFIX}/garmin/session/status",
                                Api.headers(A, key)))
        nonempty_items(await send(api, "GET", f"{PREFIX}/garmin/activities",
                                  Api.headers(A, key)))
    assert (await rows_by_user(api))[A] == world.before[A]


async def _gate(world: World, sandbox: Sandbox, headers: LooseHeaders, status: int,
                kind: str) -> list[str]:
    """Call every route with `headers`: the routes that did not answer `status` with a
    `kind` problem (public routes: 200), and whether anything reached the database or
    Garmin (nothing may)."""
    api, failures = world.api, []
    garmin_calls = len(sandbox.state.requests)
    for method, path in ROUTES:
        case = MATRIX[(method, path)]
        reply = await send(api, method, path, headers, case.requests(world.seen)[0])
        await drain(api)
        try:
            if case.operator and status == 400:  # no user id needed: the operator's answer
                if method == "HEAD":
                    assert (reply.status, reply.text) == (200, ""), reply.text
                else:
                    case.a_check(reply)
                continue
            assert reply.status == (200 if case.public else status), reply.text
            if method == "HEAD":
                assert reply.text == ""
            elif not case.public:
                assert reply.problem_type() == kind, reply.text
        except AssertionError:
            failures.append(f"{method} {path} -> {reply.status} {reply.text[:100]}")
    if await rows_by_user(world.api) != world.before:
        failures.append("rows changed")
    if len(sandbox.state.requests) != garmin_calls:
        failures.append("Garmin was called")
    return failures


async def test_every_route_without_x_user_id_is_400_and_touches_nothing(
    world: World, sandbox: Sandbox
) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    assert await _gate(world, sandbox, headers, 400, "invalid-user-id") == []


async def test_every_route_refuses_two_x_user_id_headers_instead_of_picking_one(
    world: World, sandbox: Sandbox
) -> None:
    """A request naming two users is ambiguous: which of them a chain of proxies appended
    (or a caller injected) would decide whose data it reads and changes. It must be
    refused like a missing id, in either order, not resolved to the first value."""
    for ids in ((B, A), (A, B)):
        headers = CIMultiDict([("Authorization", f"Bearer {API_KEY}"),
                               *((USER_ID_HEADER, user) for user in ids)])
        assert await _gate(world, sandbox, headers, 400, "invalid-user-id") == [], ids


async def test_every_route_without_the_key_is_401_and_touches_nothing(
    world: World, sandbox: Sandbox
) -> None:
    for headers in ({"X-User-Id": A}, {"X-User-Id": B}, {}):
        assert await _gate(world, sandbox, headers, 401, "unauthorized") == []


async def test_every_route_with_the_key_answers_its_own_user(world: World) -> None:
    """The positive control of the gates above: with the key and A's id every route works
    and reads A's data (writes run after the reads, the disconnect last)."""
    api, failures = world.api, []
    for method, path in sorted(ROUTES, key=lambda route: (MATRIX[route].order, route)):
        case = MATRIX[(method, path)]
        reply = await send(api, method, path, Api.headers(A), case.requests(world.seen)[0])
        try:
            if case.head_of is not None:
                got = await send(api, "GET", path, Api.headers(A),
                                 case.requests(world.seen)[0])
                case.a_check(got)
                assert reply.headers["Content-Length"] == got.headers["Content-Length"]
            else:
                case.a_check(reply)
        except AssertionError as exc:
            failures.append(f"{method} {path}: {exc}")
        await drain(api)
    assert failures == []
