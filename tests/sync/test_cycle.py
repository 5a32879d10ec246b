"""The Load-Use-Update cycle of sync jobs, against the sandbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.models import Activity, DailyHealth, SyncCursor
from service.sandbox import day_end_clock, expected_activities
from tests.support.app import (
    SHORT_LIVED,
    Api,
    Sandbox,
    both_engines,
    connect,
    raw_rows,
    sync_now,
    token_grants,
    use_db,
)

engine = both_engines


async def test_full_cycle_stores_every_activity_of_the_backfill(api: Api, sandbox: Sandbox) -> None:
    sandbox.state.clock = day_end_clock()  # every activity of today has started
    await connect(api, sandbox, "user-1", "alice@example.com")
    jobs = await sync_now(api, "user-1", "activities")
    assert [job["status"] for job in jobs] == ["SUCCESS"]
    use_db(api)
    stored = {a.garmin_activity_id for a in await Activity.filter(user_id="user-1")}
    account = sandbox.state.get_account("alice@example.com")
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=29), today + timedelta(days=1)
    expected = {item["activityId"] for item in expected_activities(account, today)
                if first.isoformat() <= item["startTimeLocal"][:10] <= last.isoformat()}
    assert len(expected) >= 29
    assert stored == expected
    assert jobs[0]["items_upserted"] == len(stored)


async def test_health_sync_stores_one_row_per_day(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-1", "alice@example.com")
    jobs = await sync_now(api, "user-1", "health")
    assert jobs[0]["status"] == "SUCCESS", jobs
    use_db(api)
    days = await DailyHealth.filter(user_id="user-1").order_by("calendar_date")
    assert len(days) == 30
    assert all(day.steps is not None for day in days[:-1])
    cursor = await SyncCursor.get(user_id="user-1", kind="health")
    assert cursor.last_synced_date == datetime.now(UTC).date()


async def test_second_run_changes_no_row_count(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-1", "alice@example.com")
    await sync_now(api, "user-1", "activities", "health")
    use_db(api)
    before = (await Activity.all().count(), await DailyHealth.all().count())
    jobs = await sync_now(api, "user-1", "activities", "health")
    assert {job["status"] for job in jobs} == {"SUCCESS"}
    use_db(api)
    assert (await Activity.all().count(), await DailyHealth.all().count()) == before


async def test_refresh_during_a_job_is_persisted(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await connect(api, sandbox, "user-1", "alice@example.com", **SHORT_LIVED[engine])
    before = (await raw_rows(api))[0]
    exchanges = token_grants(sandbox, engine)
    jobs = await sync_now(api, "user-1", "activities")
    assert jobs[0]["status"] == "SUCCESS"
    after = (await raw_rows(api))[0]
    assert token_grants(sandbox, engine) > exchanges
    assert after["session_data"] != before["session_data"]
    assert after["version"] > before["version"]
