"""How sync jobs fail: what each kind of Garmin failure does to the job, the stored session,
the cursor's backoff and the data, driven through the real app against the sandbox.

Every test runs with sessions of both engines; where they differ it is in how a session is
refreshed. Refreshes around failures and logins during a job:
tests/sync/test_refresh_failures.py."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from service.errors import PROBLEM_CONTENT_TYPE, TYPE_BASE
from service.keys import CONFIG, SCHEDULER
from service.models import (
    Activity,
    DailyHealth,
    JobTrigger,
    SyncCursor,
    SyncJob,
    SyncKind,
)
from service.sandbox import Account, Fault, day_end_clock, expected_activities
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import (
    SHORT_LIVED,
    Api,
    Sandbox,
    both_engines,
    connect,
    drain,
    raw_rows,
    refreshes,
    sync_now,
    token_grants,
    use_db,
)
from tests.support.waiting import eventually

USER = "user-1"
ACCOUNT = "alice@example.com"


engine = both_engines


# --- helpers ----------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _account(sandbox: Sandbox) -> Account:
    account = sandbox.state.get_account(ACCOUNT)
    assert account is not None
    return account


async def _row(api: Api) -> dict[str, Any]:
    rows = await raw_rows(api)
    assert len(rows) == 1, rows
    return rows[0]


async def _cursor(api: Api, kind: SyncKind = SyncKind.ACTIVITIES) -> SyncCursor:
    use_db(api)
    return await SyncCursor.get(user_id=USER, kind=kind)


async def _post_sync(api: Api, *kinds: str) -> Any:
    body = {"kinds": list(kinds)} if kinds else {}
    return await api.client.post("/api/v1/garmin/sync", headers=api.headers(USER), json=body)


async def _problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body: dict[str, Any] = await response.json(content_type=None)
    assert body["type"] == TYPE_BASE + slug, body
    assert body["status"] == status
    return body


def _backfill_window(api: Api, account: Account) -> list[dict[str, Any]]:
    """What the sandbox lists for the first activities sync: the last `backfill_days` local
    dates (the job asks up to tomorrow; the sandbox has nothing after today)."""
    today = _now().date()
    first = today - timedelta(days=api.app[CONFIG].sync.backfill_days - 1)
    return [item for item in expected_activities(account, today)
            if first.isoformat() <= item["startTimeLocal"][:10] <= today.isoformat()]


async def _stored_activity_ids(api: Api) -> list[int]:
    use_db(api)
    return list(await Activity.filter(user_id=USER).values_list("garmin_activity_id", flat=True))


# --- definitive failures: the session is gone -------------------------------------------


async def test_revoked_refresh_credential_expires_the_session_and_pauses_both_cursors(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    """A password change at Garmin revokes garth's OAuth1 token and DI's refresh tokens."""
    await connect(api, sandbox, USER, ACCOUNT, **SHORT_LIVED[engine])
    grants, granted = token_grants(sandbox, engine, ACCOUNT), refreshes(sandbox, engine, ACCOUNT)
    assert sandbox.state.revoke_oauth1(ACCOUNT) >= 1

    jobs = await sync_now(api, USER)

    assert {job["kind"]: job["status"] for job in jobs} == {
        "activities": "AUTH_EXPIRED", "health": "AUTH_EXPIRED"}
    assert token_grants(sandbox, engine, ACCOUNT) > grants
    assert refreshes(sandbox, engine, ACCOUNT) == granted
    row = await _row(api)
    assert row["session_data"] is None
    assert row["status"] == "EXPIRED"
    status = await (await api.status(USER)).json()
    assert status["status"] == "EXPIRED"
    assert {kind: entry["next_sync_at"] for kind, entry in status["sync"].items()} == {
        "activities": None, "health": None}
    use_db(api)
    cursors = await SyncCursor.filter(user_id=USER)
    assert len(cursors) == 2
    assert all(cursor.next_sync_at is None for cursor in cursors)
    body = await _problem(await _post_sync(api), 409, "no-session")
    assert "log in again" in body["detail"]


async def test_401_on_data_calls_after_a_successful_refresh_expires_the_session(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await connect(api, sandbox, USER, ACCOUNT)
    granted = refreshes(sandbox, engine, ACCOUNT)
    sandbox.state.set_fault(ACCOUNT, "api", Fault(status=401))

    jobs = await sync_now(api, USER, "activities")

    assert jobs[0]["status"] == "AUTH_EXPIRED", jobs
    # one refresh worked, the retry still got 401
    assert refreshes(sandbox, engine, ACCOUNT) == granted + 1
    row = await _row(api)
    assert row["session_data"] is None and row["status"] == "EXPIRED"
    use_db(api)
    assert all(c.next_sync_at is None for c in await SyncCursor.filter(user_id=USER))


# --- transient failures: the session stays, the cursor backs off -------------------------


async def test_garmin_5xx_fails_the_job_keeps_the_session_and_grows_the_backoff(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    api = await start_api(make_config(sync={"backoff_base_seconds": 1000,
                                            "backoff_max_seconds": 100_000}))
    base = timedelta(seconds=api.app[CONFIG].sync.backoff_base_seconds)
    await connect(api, sandbox, USER, ACCOUNT)
    before = await _row(api)
    sandbox.state.set_fault(ACCOUNT, "api", Fault(status=503))

    started = _now()
    jobs = await sync_now(api, USER, "activities")
    ended = _now()

    assert jobs[0]["status"] == "FAILED", jobs
    after = await _row(api)
    assert (after["session_data"], after["version"]) == (before["session_data"],
                                                         before["version"])
    first = await _cursor(api)
    assert first.consecutive_failures == 1
    assert first.last_synced_date is None
    assert first.backoff_until is not None and first.backoff_until > ended
    # failure 1: base * U(0.5, 1), whatever the jitter drew
    assert started + base / 2 <= first.backoff_until <= ended + base

    started = _now()
    jobs = await sync_now(api, USER, "activities")
    ended = _now()

    assert jobs[0]["status"] == "FAILED", jobs
    second = await _cursor(api)
    assert second.consecutive_failures == 2
    assert second.backoff_until is not None
    # failure 2: base * 2 * U(0.5, 1), so at least the base the first delay never exceeded
    assert started + base <= second.backoff_until <= ended + 2 * base
    assert second.backoff_until - started >= first.backoff_until - ended
    after = await _row(api)
    assert (after["session_data"], after["version"]) == (before["session_data"],
                                                         before["version"])


async def test_timeout_fails_the_job_and_keeps_the_session(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    api = await start_api(make_config(garmin={"timeout_seconds": 1}))
    await connect(api, sandbox, USER, ACCOUNT)
    before = await _row(api)
    sandbox.state.set_fault(ACCOUNT, "api", Fault(hang_seconds=3))

    jobs = await sync_now(api, USER, "activities")

    assert jobs[0]["status"] == "FAILED", jobs
    assert "in time" in jobs[0]["error"]
    after = await _row(api)
    assert (after["session_data"], after["version"]) == (before["session_data"],
                                                         before["version"])
    assert (await _cursor(api)).consecutive_failures == 1


@pytest.mark.parametrize("fault", [Fault(reset=True), Fault(truncated=True)],
                         ids=["connection-reset", "truncated-json"])
async def test_broken_answer_midway_fails_the_job_without_partial_rows(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi,
    monkeypatch: pytest.MonkeyPatch, fault: Fault,
) -> None:
    api = await start_api(make_config(sync={"page_size": 10}))
    await connect(api, sandbox, USER, ACCOUNT)
    account = _account(sandbox)
    before = await _row(api)
    count_data = sandbox.state.count_data

    def break_second_page(username: str | None, family: str) -> None:
        # counted before the sandbox looks up faults: the second page gets the fault
        count_data(username, family)
        if family == "activities" and account.data_calls["activities"] == 2:
            sandbox.state.set_fault(ACCOUNT, "api", dataclasses.replace(fault, times=1))

    monkeypatch.setattr(sandbox.state, "count_data", break_second_page)

    jobs = await sync_now(api, USER, "activities")

    assert jobs[0]["status"] == "FAILED", jobs
    assert jobs[0]["items_upserted"] == 0
    assert account.data_calls["activities"] == 2  # page 1 arrived, page 2 broke
    assert await _stored_activity_ids(api) == []
    cursor = await _cursor(api)
    assert cursor.last_synced_date is None and cursor.consecutive_failures == 1
    after = await _row(api)
    assert (after["session_data"], after["version"]) == (before["session_data"],
                                                         before["version"])


async def _health_sync_meeting(fault: Fault, make_config: MakeConfig, start_api: StartApi,
                               sandbox: Sandbox) -> tuple[Api, str]:
    """A connected user whose manual health sync just met `fault`; the job's status."""
    api = await start_api(make_config(sync={"initial_spread_seconds": 0}))
    await connect(api, sandbox, USER, ACCOUNT)
    sandbox.state.set_fault(ACCOUNT, "api", fault)
    [job] = await sync_now(api, USER, "health")
    return api, job["status"]


async def test_a_manual_sync_during_a_rate_limit_backoff_is_429_and_calls_nothing(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi, engine: str
) -> None:
    api, status = await _health_sync_meeting(Fault(status=429, retry_after=600), make_config,
                                             start_api, sandbox)
    assert status == "RATE_LIMITED"
    account = _account(sandbox)

    def calls() -> tuple[int, dict[str, int], int]:
        return (account.api_calls, dict(account.data_calls),
                token_grants(sandbox, engine, ACCOUNT))

    before = calls()

    response = await api.client.post("/api/v1/garmin/sync", headers=api.headers(USER),
                                      json={"kinds": ["activities"]})
    assert response.status == 429
    assert response.content_type == PROBLEM_CONTENT_TYPE
    body = await response.json()
    assert body["type"] == TYPE_BASE + "garmin-rate-limited"
    assert 600 <= int(response.headers["Retry-After"]) <= 2 * 600
    assert calls() == before
    use_db(api)
    assert await SyncJob.filter(user_id=USER).count() == 1


async def test_a_manual_sync_runs_again_once_the_rate_limit_backoff_is_over(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    api, status = await _health_sync_meeting(Fault(status=429, retry_after=600), make_config,
                                             start_api, sandbox)
    assert status == "RATE_LIMITED"
    sandbox.state.clear_fault(ACCOUNT, "api")
    use_db(api)
    await SyncCursor.filter(user_id=USER).update(backoff_until=_now() - timedelta(seconds=1))

    jobs = await sync_now(api, USER, "health")
    assert [job["status"] for job in jobs] == ["SUCCESS"]


async def test_a_manual_sync_retries_at_once_after_a_garmin_5xx(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    api, status = await _health_sync_meeting(Fault(status=503), make_config, start_api,
                                             sandbox)
    assert status == "FAILED"
    use_db(api)
    cursor = await SyncCursor.get(user_id=USER, kind=SyncKind.HEALTH)
    assert cursor.backoff_until is not None and cursor.backoff_until > _now()
    sandbox.state.clear_fault(ACCOUNT, "api")

    jobs = await sync_now(api, USER, "health")
    assert [job["status"] for job in jobs] == ["SUCCESS"]


async def test_rate_limit_backs_off_past_retry_after_and_the_scheduler_waits(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    manual = await start_api(make_config(sync={"initial_spread_seconds": 0}))
    await connect(manual, sandbox, USER, ACCOUNT)
    account = _account(sandbox)
    before = await _row(manual)
    sandbox.state.set_fault(ACCOUNT, "api", Fault(status=429, retry_after=600))

    started = _now()
    jobs = await sync_now(manual, USER)

    assert {job["kind"]: job["status"] for job in jobs} == {
        "activities": "RATE_LIMITED", "health": "RATE_LIMITED"}
    after = await _row(manual)
    assert (after["session_data"], after["version"]) == (before["session_data"],
                                                         before["version"])
    use_db(manual)
    cursors = await SyncCursor.filter(user_id=USER)
    assert len(cursors) == 2
    for cursor in cursors:
        assert cursor.backoff_until is not None
        assert cursor.backoff_until >= started + timedelta(seconds=600)
        # due by its schedule: only the backoff holds it back
        assert cursor.next_sync_at is not None and cursor.next_sync_at <= _now()

    scheduled = await start_api(make_config(sync={
        "enabled": True, "tick_seconds": 0.1, "initial_spread_seconds": 0}))
    scheduler = scheduled.app[SCHEDULER]
    calls = (account.api_calls, dict(account.data_calls))
    target = scheduler.ticks + 5
    await eventually(lambda: scheduler.ticks >= target)  # ticks before the last are done

    assert (account.api_calls, account.data_calls) == calls
    use_db(scheduled)
    assert not await SyncJob.filter(user_id=USER, trigger=JobTrigger.SCHEDULED).exists()

    # control: the same scheduler does pick the user once the backoff is over
    sandbox.state.clear_fault(ACCOUNT, "api")
    await SyncCursor.filter(user_id=USER).update(backoff_until=_now() - timedelta(seconds=1))

    async def both_synced() -> bool:
        use_db(scheduled)
        return await SyncJob.filter(user_id=USER, trigger=JobTrigger.SCHEDULED,
                                    status="SUCCESS").count() == 2

    await eventually(both_synced)
    await drain(scheduled)
    assert account.api_calls > calls[0]


# --- partial trouble that is not a failure -----------------------------------------------


async def test_malformed_activity_is_skipped_and_the_rest_is_stored(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.state.clock = day_end_clock()  # every activity of today has started
    await connect(api, sandbox, USER, ACCOUNT, malformed_activity_every=5)

    jobs = await sync_now(api, USER, "activities")

    job = jobs[0]
    assert job["status"] == "SUCCESS", jobs
    window = _backfill_window(api, _account(sandbox))
    malformed = [item for item in window if "activityId" not in item]
    good = {item["activityId"] for item in window if "activityId" in item}
    assert malformed and good
    assert job["items_skipped"] == len(malformed)
    assert job["items_fetched"] == len(window)
    assert job["items_upserted"] == len(good)
    assert set(await _stored_activity_ids(api)) == good


# --- paging and incremental windows -------------------------------------------------------


async def test_backfill_pages_store_every_activity_exactly_once(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    api = await start_api(make_config(sync={"page_size": 7}))
    page_size = api.app[CONFIG].sync.page_size
    sandbox.state.clock = day_end_clock()  # every activity of today has started
    await connect(api, sandbox, USER, ACCOUNT, activities_per_day=2)
    account = _account(sandbox)
    pages = account.data_calls["activities"]

    jobs = await sync_now(api, USER, "activities")

    assert jobs[0]["status"] == "SUCCESS", jobs
    expected = [item["activityId"] for item in _backfill_window(api, account)]
    count = len(expected)
    assert count == 2 * api.app[CONFIG].sync.backfill_days
    stored = await _stored_activity_ids(api)
    assert sorted(stored) == sorted(expected)
    assert len(set(stored)) == count
    # ceil(n / page) pages; when n is a multiple of the page, one more (empty) page
    assert account.data_calls["activities"] - pages == count // page_size + 1
    assert jobs[0]["items_fetched"] == count


async def test_second_health_sync_fetches_only_the_overlap_days(
    api: Api, sandbox: Sandbox
) -> None:
    await connect(api, sandbox, USER, ACCOUNT)
    account = _account(sandbox)
    config = api.app[CONFIG].sync
    summaries = account.data_calls["summary"]

    first = await sync_now(api, USER, "health")

    assert first[0]["status"] == "SUCCESS", first
    assert account.data_calls["summary"] - summaries == config.backfill_days
    use_db(api)
    updated: dict[date, datetime] = dict(
        await DailyHealth.filter(user_id=USER).values_list("calendar_date", "updated_at"))
    summaries = account.data_calls["summary"]

    second = await sync_now(api, USER, "health")

    assert second[0]["status"] == "SUCCESS", second
    assert account.data_calls["summary"] - summaries == config.overlap_days == 2
    assert second[0]["items_upserted"] == config.overlap_days
    use_db(api)
    now_updated = dict(
        await DailyHealth.filter(user_id=USER).values_list("calendar_date", "updated_at"))
    assert now_updated.keys() == updated.keys()
    today = _now().date()
    # only the overlap days were written again, and of those only a day whose values
    # changed (today's, while the day goes on) is rewritten: an unchanged row keeps its
    # `updated_at`
    assert {day for day, at in now_updated.items() if at != updated[day]} <= {
        today - timedelta(days=1), today}
