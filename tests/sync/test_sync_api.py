"""The sync API through the real app: start jobs, list jobs, activities and daily health."""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from service.keys import CONFIG
from service.models import Activity, SyncJob
from service.sandbox import generated_day
from tests.support.app import ENGINES, Api, Sandbox, connect, drain, sync_now, use_db

SYNC = "/api/v1/garmin/sync"
JOBS = "/api/v1/garmin/sync/jobs"
ACTIVITIES = "/api/v1/garmin/activities"
HEALTH = "/api/v1/garmin/health/daily"
PROBLEM_JSON = "application/problem+json"
ALICE = "alice@example.com"
BOB = "bob@example.com"


def _cursor(raw: str) -> str:
    """A cursor in the API's encoding whose content is `raw` (for forged cursors)."""
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def _get(api: Api, path: str, user: str = "user-1", **params: Any) -> Any:
    return await api.client.get(path, headers=api.headers(user),
                                params={name: str(value) for name, value in params.items()})


async def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM_JSON
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    return body


async def _all_pages(api: Api, path: str, user: str = "user-1", **params: Any
                     ) -> tuple[list[dict[str, Any]], int]:
    """Every item of a paged listing, following next_cursor; and how many pages it took."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for pages in range(1, 1000):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await _get(api, path, user, **query)
        assert response.status == 200, await response.text()
        body = await response.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages
    raise AssertionError("paging never ended")


async def _stored_activities(api: Api, user: str) -> list[Activity]:
    use_db(api)
    return await Activity.filter(user_id=user).order_by("-start_time_utc")


def _start(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["start_time_utc"])


@pytest.fixture
async def synced(api: Api, sandbox: Sandbox) -> list[Activity]:
    """user-1 connected as alice (two activities a day) with activities synced."""
    await connect(api, sandbox, "user-1", ALICE, activities_per_day=2)
    jobs = await sync_now(api, "user-1", "activities")
    assert [job["status"] for job in jobs] == ["SUCCESS"], jobs
    stored = await _stored_activities(api, "user-1")
    assert len(stored) >= 50
    return stored


# --- POST /sync ----------------------------------------------------------------------------


async def test_sync_without_kinds_starts_one_job_per_kind(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    response = await api.client.post(SYNC, headers=api.headers("user-1"), json={})
    assert response.status == 202, await response.text()
    jobs = (await response.json())["jobs"]
    assert sorted(job["kind"] for job in jobs) == ["activities", "health"]
    assert {job["trigger"] for job in jobs} == {"manual"}
    assert all(isinstance(job["id"], int) for job in jobs)
    assert len({job["id"] for job in jobs}) == 2
    await drain(api)
    listed = (await (await _get(api, JOBS)).json())["items"]
    assert {job["id"]: job["status"] for job in listed} == {job["id"]: "SUCCESS" for job in jobs}


async def test_sync_of_health_only_starts_only_a_health_job(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    response = await api.client.post(SYNC, headers=api.headers("user-1"),
                                     json={"kinds": ["health"]})
    assert response.status == 202, await response.text()
    jobs = (await response.json())["jobs"]
    assert [(job["kind"], job["trigger"]) for job in jobs] == [("health", "manual")]
    await drain(api)
    listed = (await (await _get(api, JOBS)).json())["items"]
    assert [(job["id"], job["kind"], job["status"]) for job in listed] == [
        (jobs[0]["id"], "health", "SUCCESS")]


async def test_sync_for_a_user_who_never_connected_is_409(api: Api) -> None:
    response = await api.client.post(SYNC, headers=api.headers("user-1"), json={})
    body = await _problem(response, 409)
    assert "log in" in body["detail"]
    use_db(api)
    assert await SyncJob.filter(user_id="user-1").count() == 0


@pytest.mark.parametrize("engine", ENGINES)
async def test_sync_after_the_session_expired_is_409_asking_to_log_in_again(
    api: Api, sandbox: Sandbox
) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    sandbox.state.revoke_oauth1(ALICE)
    sandbox.state.expire_access_tokens(ALICE)
    status = await (await api.status("user-1", refresh=True)).json()
    assert status["status"] == "EXPIRED", status
    response = await api.client.post(SYNC, headers=api.headers("user-1"), json={})
    body = await _problem(response, 409)
    assert "log in again" in body["detail"]
    use_db(api)
    assert await SyncJob.filter(user_id="user-1").count() == 0


@pytest.mark.parametrize("body", [
    {"kinds": "activities"},
    {"kinds": []},
    {"kinds": ["steps"]},
    {"kinds": ["health", "steps"]},
    {"kinds": [1]},
    {"kinds": None},
    {"kinds": ["health"], "force": True},
    ["health"],
], ids=["kinds-not-a-list", "empty-list", "unknown-kind", "one-unknown-kind", "kind-not-a-string",
        "kinds-null", "extra-field", "body-not-an-object"])
async def test_sync_with_a_bad_body_is_400_and_starts_nothing(
    api: Api, sandbox: Sandbox, body: Any
) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    response = await api.client.post(SYNC, headers=api.headers("user-1"), json=body)
    await _problem(response, 400)
    use_db(api)
    assert await SyncJob.filter(user_id="user-1").count() == 0


async def test_sync_with_a_body_that_is_not_json_is_400(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    headers = {**api.headers("user-1"), "Content-Type": "application/json"}
    response = await api.client.post(SYNC, headers=headers, data=b'{"kinds": ["health"')
    await _problem(response, 400)
    use_db(api)
    assert await SyncJob.filter(user_id="user-1").count() == 0


async def test_sync_with_a_non_json_content_type_is_415(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    headers = {**api.headers("user-1"), "Content-Type": "text/plain"}
    response = await api.client.post(SYNC, headers=headers, data=b'{"kinds": ["health"]}')
    await _problem(response, 415)
    use_db(api)
    assert await SyncJob.filter(user_id="user-1").count() == 0


@pytest.mark.parametrize(("method", "path"), [
    ("POST", SYNC), ("GET", JOBS), ("GET", ACTIVITIES),
    ("GET", f"{HEALTH}?from=2024-01-01&to=2024-01-02"),
])
@pytest.mark.parametrize("key", [None, "wrong-key-0123456789"], ids=["no-key", "wrong-key"])
async def test_sync_routes_need_the_api_key(
    api: Api, sandbox: Sandbox, method: str, path: str, key: str | None
) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    headers = {"X-User-Id": "user-1"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    response = await api.client.request(method, path, headers=headers,
                                        json={} if method == "POST" else None)
    await _problem(response, 401)
    use_db(api)
    assert await SyncJob.filter(user_id="user-1").count() == 0


# --- GET /sync/jobs ------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 3, 4, 6, 500])
async def test_jobs_are_listed_newest_first_and_paging_covers_each_once(
    api: Api, sandbox: Sandbox, limit: int
) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    created: list[int] = []
    for kinds in (["activities", "health"], ["health"], ["activities", "health"], ["health"]):
        created += [job["id"] for job in await sync_now(api, "user-1", *kinds)]
    assert len(created) == 6
    items, pages = await _all_pages(api, JOBS, limit=limit)
    ids = [item["id"] for item in items]
    assert ids == sorted(created, reverse=True)
    assert pages == max(1, -(-len(created) // limit))
    assert all(item["status"] == "SUCCESS" for item in items)


BAD_LIMITS = pytest.mark.parametrize("limit", [
    "0", "501", "x", "-1", "2.5", "", " 5", "1e2", "\u00b2",
], ids=["zero", "501", "letter", "negative", "fraction", "empty", "space", "exponent",
        "superscript-two"])


@BAD_LIMITS
async def test_jobs_with_a_bad_limit_is_400(api: Api, limit: str) -> None:
    await _problem(await _get(api, JOBS, limit=limit), 400)


@BAD_LIMITS
async def test_activities_with_a_bad_limit_is_400(api: Api, limit: str) -> None:
    await _problem(await _get(api, ACTIVITIES, limit=limit), 400)


@pytest.mark.parametrize("cursor", [
    "%%%", "not-a-cursor", _cursor("abc"), _cursor("1|2"), _cursor(""), "x" * 201,
], ids=["symbols", "random-text", "non-numeric-id", "two-parts", "empty-content", "too-long"])
async def test_jobs_with_a_garbage_cursor_is_400(api: Api, cursor: str) -> None:
    await _problem(await _get(api, JOBS, cursor=cursor), 400)


async def test_jobs_of_one_user_are_invisible_to_another(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-a", ALICE)
    await connect(api, sandbox, "user-b", BOB)
    a_jobs = {job["id"] for job in await sync_now(api, "user-a")}
    assert len(a_jobs) == 2
    empty = await (await _get(api, JOBS, "user-b")).json()
    assert empty == {"items": [], "next_cursor": None}
    b_jobs = {job["id"] for job in await sync_now(api, "user-b", "health")}
    items, _ = await _all_pages(api, JOBS, "user-b", limit=1)
    assert {item["id"] for item in items} == b_jobs
    items, _ = await _all_pages(api, JOBS, "user-a", limit=1)
    assert {item["id"] for item in items} == a_jobs


# --- GET /activities -----------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 7, 50, 500])
async def test_activities_paging_returns_each_stored_activity_once_newest_first(
    api: Api, synced: list[Activity], limit: int
) -> None:
    items, pages = await _all_pages(api, ACTIVITIES, limit=limit)
    ids = [item["garmin_activity_id"] for item in items]
    assert len(ids) == len(set(ids)) == len(synced)
    assert set(ids) == {activity.garmin_activity_id for activity in synced}
    starts = [_start(item) for item in items]
    assert starts == sorted(starts, reverse=True)
    assert pages == max(1, -(-len(synced) // limit))


async def test_activities_sharing_a_start_time_are_paged_without_loss_or_repeats(
    api: Api
) -> None:
    use_db(api)
    same = datetime(2024, 3, 1, 7, 30, tzinfo=UTC)
    now = datetime.now(UTC)
    for index in range(7):
        start = same if index < 5 else same - timedelta(hours=index)
        await Activity.create(user_id="user-1", garmin_activity_id=1000 + index,
                              activity_type="running", start_time_utc=start, raw_json={},
                              first_seen=now, updated_at=now)
    items, pages = await _all_pages(api, ACTIVITIES, limit=2)
    ids = [item["garmin_activity_id"] for item in items]
    assert sorted(ids) == list(range(1000, 1007))
    assert ids[:5] == [1004, 1003, 1002, 1001, 1000]  # ties: newest row first
    assert pages == 4


async def test_activities_since_and_until_take_date_times(
    api: Api, synced: list[Activity]
) -> None:
    since, until = synced[20].start_time_utc, synced[5].start_time_utc
    items, _ = await _all_pages(api, ACTIVITIES, since=since.isoformat(),
                                until=until.isoformat(), limit=500)
    expected = {a.garmin_activity_id for a in synced if since <= a.start_time_utc < until}
    assert {item["garmin_activity_id"] for item in items} == expected
    assert synced[20].garmin_activity_id in expected  # since is inclusive
    assert synced[5].garmin_activity_id not in expected  # until is exclusive
    assert len(expected) == 15


async def test_activities_since_and_until_take_date_times_with_an_offset(
    api: Api, synced: list[Activity]
) -> None:
    since = synced[30].start_time_utc
    shifted = since.astimezone(timezone(timedelta(hours=2)))
    assert "+02:00" in shifted.isoformat()
    items, _ = await _all_pages(api, ACTIVITIES, since=shifted.isoformat(), limit=500)
    expected = {a.garmin_activity_id for a in synced if a.start_time_utc >= since}
    assert {item["garmin_activity_id"] for item in items} == expected
    assert len(expected) == 31


async def test_activities_since_and_until_take_plain_dates(
    api: Api, synced: list[Activity]
) -> None:
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=10), today - timedelta(days=3)
    items, _ = await _all_pages(api, ACTIVITIES, since=first.isoformat(),
                                until=last.isoformat(), limit=500)
    low = datetime.combine(first, datetime.min.time(), UTC)
    high = datetime.combine(last, datetime.min.time(), UTC)
    expected = {a.garmin_activity_id for a in synced if low <= a.start_time_utc < high}
    assert len(expected) >= 12
    assert {item["garmin_activity_id"] for item in items} == expected
    assert all(low <= _start(item) < high for item in items)


async def test_activities_filter_by_type(api: Api, synced: list[Activity]) -> None:
    kinds = {activity.activity_type for activity in synced}
    assert len(kinds) >= 2
    kind = max(kinds, key=lambda k: sum(a.activity_type == k for a in synced))
    items, _ = await _all_pages(api, ACTIVITIES, type=kind, limit=3)
    assert {item["garmin_activity_id"] for item in items} == {
        a.garmin_activity_id for a in synced if a.activity_type == kind}
    assert {item["type"] for item in items} == {kind}
    none = await (await _get(api, ACTIVITIES, type="underwater_hockey")).json()
    assert none == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("query", [
    {"since": "yesterday"}, {"until": "2024-13-01"}, {"since": "2024-01-01T25:00:00"},
    {"until": "01/02/2024"}, {"since": "2024-02-30"},
], ids=["word", "month-13", "hour-25", "us-format", "february-30"])
async def test_activities_with_a_bad_date_is_400(api: Api, query: dict[str, str]) -> None:
    await _problem(await _get(api, ACTIVITIES, **query), 400)


@pytest.mark.parametrize("cursor", [
    "%%%", _cursor("abc"), _cursor("not-a-date|5"), _cursor("2024-01-01T00:00:00+00:00|x"),
], ids=["symbols", "one-part", "bad-date", "bad-id"])
async def test_activities_with_a_garbage_cursor_is_400(api: Api, cursor: str) -> None:
    await _problem(await _get(api, ACTIVITIES, cursor=cursor), 400)


async def test_activities_of_one_user_are_invisible_to_another(
    api: Api, sandbox: Sandbox, synced: list[Activity]
) -> None:
    await connect(api, sandbox, "user-2", BOB)
    empty = await (await _get(api, ACTIVITIES, "user-2")).json()
    assert empty == {"items": [], "next_cursor": None}
    assert [job["status"] for job in await sync_now(api, "user-2", "activities")] == ["SUCCESS"]
    bob_stored = {a.garmin_activity_id for a in await _stored_activities(api, "user-2")}
    alice_stored = {a.garmin_activity_id for a in synced}
    assert bob_stored and not bob_stored & alice_stored
    bob_items, _ = await _all_pages(api, ACTIVITIES, "user-2", limit=500)
    assert {item["garmin_activity_id"] for item in bob_items} == bob_stored
    alice_items, _ = await _all_pages(api, ACTIVITIES, "user-1", limit=500)
    assert {item["garmin_activity_id"] for item in alice_items} == alice_stored


# --- GET /health/daily ---------------------------------------------------------------------


async def test_daily_health_returns_the_days_in_order_with_the_sandboxs_values(
    api: Api, sandbox: Sandbox
) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    assert [job["status"] for job in await sync_now(api, "user-1", "health")] == ["SUCCESS"]
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=45), today - timedelta(days=1)
    response = await _get(api, HEALTH, **{"from": first.isoformat(), "to": last.isoformat()})
    assert response.status == 200, await response.text()
    items = (await response.json())["items"]
    synced_days = [today - timedelta(days=back) for back in range(29, 0, -1)]
    assert [item["date"] for item in items] == [day.isoformat() for day in synced_days]
    account = sandbox.state.get_account(ALICE)
    assert account is not None
    for item, day in zip(items, synced_days, strict=True):
        source = generated_day(account, day)
        sleep = source["sleep"]["dailySleepDTO"]
        expected = {
            "steps": source["summary"]["totalSteps"],
            "resting_hr": source["summary"]["restingHeartRate"],
            "sleep_seconds": sleep["sleepTimeSeconds"],
            "sleep_score": sleep.get("sleepScores", {}).get("overall", {}).get("value"),
            "hrv_last_night": (source["hrv"] or {}).get("hrvSummary", {}).get("lastNightAvg"),
        }
        assert {name: item[name] for name in expected} == expected, day
    assert all(item["steps"] is not None for item in items)
    assert any(item["hrv_last_night"] is not None for item in items)


async def test_daily_health_of_a_single_day(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    await sync_now(api, "user-1", "health")
    day = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
    items = (await (await _get(api, HEALTH, **{"from": day, "to": day})).json())["items"]
    assert [item["date"] for item in items] == [day]


async def test_daily_health_of_another_user_is_invisible(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-1", ALICE)
    await connect(api, sandbox, "user-2", BOB)
    await sync_now(api, "user-1", "health")
    today = datetime.now(UTC).date()
    query = {"from": (today - timedelta(days=40)).isoformat(), "to": today.isoformat()}
    assert len((await (await _get(api, HEALTH, "user-1", **query)).json())["items"]) == 30
    assert (await (await _get(api, HEALTH, "user-2", **query)).json())["items"] == []


async def test_daily_health_accepts_a_range_of_366_days(api: Api) -> None:
    first = date(2024, 1, 1)
    query = {"from": first.isoformat(), "to": (first + timedelta(days=365)).isoformat()}
    response = await _get(api, HEALTH, **query)
    assert response.status == 200, await response.text()


@pytest.mark.parametrize("query", [
    {}, {"from": "2024-01-01"}, {"to": "2024-01-01"}, {"from": "", "to": "2024-01-01"},
    {"from": "2024-02-01", "to": "2024-01-31"},
    {"from": "2024-01-01", "to": "2025-01-01"},
    {"from": "2020-01-01", "to": "2024-01-01"},
    {"from": "2024-01-xx", "to": "2024-01-02"},
    {"from": "2024-01-01", "to": "2024-02-30"},
    {"from": "2024-01-01T00:00:00", "to": "2024-01-02"},
], ids=["none", "no-to", "no-from", "empty-from", "to-before-from", "367-days", "4-years",
        "bad-from", "bad-to", "date-time"])
async def test_daily_health_with_a_bad_range_is_400(api: Api, query: dict[str, str]) -> None:
    await _problem(await _get(api, HEALTH, **query), 400)


# --- status and the OpenAPI document ------------------------------------------------------


async def test_status_reports_the_last_successful_sync_and_the_next_one(
    api: Api, sandbox: Sandbox
) -> None:
    connected = datetime.now(UTC)
    await connect(api, sandbox, "user-1", ALICE)
    before = datetime.now(UTC)
    await sync_now(api, "user-1", "activities")
    after = datetime.now(UTC)
    body = await (await api.status("user-1")).json()
    activities, health = body["sync"]["activities"], body["sync"]["health"]
    assert before <= datetime.fromisoformat(activities["last_success_at"]) <= after
    assert health["last_success_at"] is None
    spread = timedelta(seconds=api.app[CONFIG].sync.initial_spread_seconds)
    for kind in (activities, health):
        assert connected <= datetime.fromisoformat(kind["next_sync_at"]) <= after + spread


async def test_every_sync_route_is_in_the_openapi_document(api: Api) -> None:
    spec = await (await api.client.get("/api/v1/openapi.json")).json()
    routes = {(route.method.lower(), route.resource.canonical)
              for route in api.app.router.routes() if route.resource is not None}
    for method, path in [("post", SYNC), ("get", JOBS), ("get", ACTIVITIES), ("get", HEALTH)]:
        assert (method, path) in routes
        assert method in spec["paths"].get(path, {}), path
