"""The statements every sync job runs: lease claims, claim passes, job hand-offs, upserts.

They are hand-written SQL (service/models/sql.py) for speed; these tests pin what they must
keep doing on SQLite and PostgreSQL alike, next to the end-to-end sync tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.keys import SCHEDULER
from service.models import (
    GarminAuthenticationState,
    JobStatus,
    JobTrigger,
    SyncCursor,
    SyncJob,
    SyncKind,
    UserLease,
)
from service.store import sessions as session_store
from service.store import sql
from service.store import sync as store
from service.store.leases import LeaseLost, UserLeases
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import Api, Sandbox, connect, sync_now, use_db
from tests.support.waiting import eventually


@pytest.fixture
async def db_api(make_config: MakeConfig, start_api: StartApi) -> Api:
    """An app instance without the scheduler, for its database."""
    api = await start_api(make_config(sync={"enabled": False}))
    use_db(api)
    return api


# --- leases --------------------------------------------------------------------------------


async def test_a_lease_is_claimed_once_taken_over_after_expiry_and_fenced_by_its_token(
    db_api: Api,
) -> None:
    now = datetime.now(UTC)
    first = UserLeases("w1", 30, clock=lambda: now)
    second = UserLeases("w2", 30, clock=lambda: now)

    lease = await first.acquire("user-1", "sync")
    assert lease is not None and lease.token == 1  # the row is created by the first claim
    assert await second.acquire("user-1", "sync") is None  # held, not expired

    later = now + timedelta(seconds=31)
    taker = UserLeases("w2", 30, clock=lambda: later)
    taken = await taker.acquire("user-1", "login")
    assert taken is not None and taken.token == 2
    row = await UserLease.get(user_id="user-1")
    assert (row.owner, row.token, row.purpose) == (taken.owner, 2, "login")

    # the first holder's late write is refused, whichever way it fences
    assert not await first.renew(lease)
    async with sql.transaction(UserLease) as connection:
        with pytest.raises(LeaseLost):
            await first.fence(lease, connection)
    with pytest.raises(LeaseLost):
        async with sql.transaction(UserLease) as connection:
            await first.fence(lease, connection, release=True)
    assert (await UserLease.get(user_id="user-1")).owner == taken.owner

    await taker.release(taken)
    again = await UserLeases("w3", 30, clock=lambda: later).acquire("user-1", "sync")
    assert again is not None and again.token == 3


async def test_a_fence_that_releases_takes_effect_only_when_its_transaction_commits(
    db_api: Api,
) -> None:
    leases = UserLeases("w1", 30)
    lease = await leases.acquire("user-1", "sync")
    assert lease is not None

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with sql.transaction(UserLease) as connection:
            await leases.fence(lease, connection, release=True)
            raise Rollback
    assert (await UserLease.get(user_id="user-1")).owner == lease.owner  # still held

    async with sql.transaction(UserLease) as connection:
        await leases.fence(lease, connection, release=True)
    leases.forget(lease)
    row = await UserLease.get(user_id="user-1")
    assert (row.owner, row.expires_at, row.purpose) == (None, None, None)
    assert not leases.is_held_here("user-1")
    assert await leases.acquire("user-1", "sync") is not None


async def test_concurrent_claims_of_one_user_give_the_lease_to_exactly_one(db_api: Api) -> None:
    workers = [UserLeases(f"w{n}", 30) for n in range(8)]
    leases = await asyncio.gather(*(w.acquire("user-1", "sync") for w in workers))
    assert sum(lease is not None for lease in leases) == 1


async def test_a_pass_claims_its_users_leases_at_once_leaving_out_busy_ones(
    db_api: Api,
) -> None:
    here, elsewhere = UserLeases("w1", 30), UserLeases("w2", 30)
    held_elsewhere = await elsewhere.acquire("user-2", "login")
    held_here = await here.acquire("user-3", "sync")
    assert held_elsewhere is not None and held_here is not None

    leases = await here.acquire_many(["user-4", "user-1", "user-2", "user-3", "user-1"], "sync")
    assert sorted(leases) == ["user-1", "user-4"]
    for user, lease in leases.items():
        row = await UserLease.get(user_id=user)
        assert (row.owner, row.token, row.purpose) == (lease.owner, lease.token, "sync")
        assert here.is_held_here(user)
    assert not here.is_held_here("user-2") and here.is_held_here("user-3")
    assert await here.acquire_many([], "sync") == {}


# --- claim passes ------------------------------------------------------------------------


async def _due_cursors(users: list[str], at: datetime) -> None:
    for user in users:
        await store.resume_cursors(user, at, 0)


async def test_a_claim_moves_only_cursors_still_as_they_were_read(db_api: Api) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    await _due_cursors(["user-1", "user-2"], past)
    due = await store.due_cursors(datetime.now(UTC), 10)
    assert len(due) == 4

    # another replica claims one of them first
    other = next(cursor for cursor in due if cursor.user_id == "user-2")
    moved = datetime.now(UTC) + timedelta(hours=1)
    assert await store.claim_cursors([other], [moved]) == [other]

    next_at = [datetime.now(UTC) + timedelta(minutes=n + 5) for n in range(len(due))]
    claimed = await store.claim_cursors(due, next_at)
    assert sorted((c.user_id, c.kind) for c in claimed) == sorted(
        (c.user_id, c.kind) for c in due if c.id != other.id)
    for cursor, at in zip(due, next_at, strict=True):
        row = await SyncCursor.get(id=cursor.id)
        assert row.next_sync_at == (moved if cursor.id == other.id else at)
    assert await store.claim_cursors(due, next_at) == []  # nothing is due as read any more


async def test_jobs_of_a_pass_are_created_pending_in_one_statement(db_api: Api) -> None:
    now = datetime.now(UTC)
    specs = [("user-1", SyncKind.ACTIVITIES), ("user-1", SyncKind.HEALTH),
             ("user-2", SyncKind.HEALTH)]
    jobs = await store.create_jobs(specs, JobTrigger.SCHEDULED, now)
    assert [(job.user_id, job.kind) for job in jobs] == specs
    for job in jobs:
        row = await SyncJob.get(id=job.id)
        assert (row.status, row.trigger, row.user_id, row.kind) == (
            JobStatus.PENDING, JobTrigger.SCHEDULED, job.user_id, job.kind)
        assert row.created_at == now and row.started_at is None
        assert (row.items_fetched, row.items_upserted, row.items_skipped) == (0, 0, 0)


async def test_stale_running_and_pending_jobs_are_failed_and_live_ones_kept(db_api: Api) -> None:
    now = datetime.now(UTC)
    leases = UserLeases("w1", 30, clock=lambda: now)
    held = await leases.acquire("held", "sync")
    assert held is not None
    await UserLease.create(user_id="expired", owner="dead/1", token=4,
                           expires_at=now - timedelta(seconds=1))

    def running(user: str, token: int | None) -> Awaitable[SyncJob]:
        return SyncJob.create(user_id=user, kind=SyncKind.HEALTH, trigger=JobTrigger.SCHEDULED,
                              status=JobStatus.RUNNING, started_at=now, lease_token=token)

    live = await running("held", held.token)
    wrong_token = await running("held", held.token + 1)
    expired = await running("expired", 4)
    no_lease = await running("nobody", None)
    fresh = await store.create_job("user-1", SyncKind.HEALTH, JobTrigger.MANUAL)
    old = await store.create_job("user-2", SyncKind.HEALTH, JobTrigger.MANUAL)
    await SyncJob.filter(id=old.id).update(created_at=now - timedelta(hours=1))

    assert await store.recover_stale_jobs(now, timedelta(minutes=5)) == 4
    statuses = {job.id: (await SyncJob.get(id=job.id)).status
                for job in (live, wrong_token, expired, no_lease, fresh, old)}
    assert statuses == {live.id: JobStatus.RUNNING, wrong_token.id: JobStatus.FAILED,
                        expired.id: JobStatus.FAILED, no_lease.id: JobStatus.FAILED,
                        fresh.id: JobStatus.PENDING, old.id: JobStatus.FAILED}
    assert (await SyncJob.get(id=old.id)).error == "job never started"
    assert (await SyncJob.get(id=expired.id)).error == "worker stopped before the job finished"


async def test_a_freed_slot_claims_the_next_due_user_without_waiting_for_a_tick(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    users = [f"user-{n}" for n in range(6)]
    setup = await start_api(make_config(sync={"enabled": False, "initial_spread_seconds": 0}))
    for n, user in enumerate(users):
        await connect(setup, sandbox, user, f"athlete{n}@example.com")
    # one tick (at start), then none for a minute: only freed slots can start the others
    api = await start_api(make_config(sync={
        "enabled": True, "tick_seconds": 60, "max_concurrent_users": 2, "backfill_days": 1,
        "initial_spread_seconds": 0, "activities_interval_minutes": 600,
        "health_interval_minutes": 600}))
    scheduler = api.app[SCHEDULER]

    async def all_synced() -> bool:
        assert scheduler.active_jobs <= 2
        use_db(api)
        done = await SyncJob.filter(status=JobStatus.SUCCESS).values_list("user_id", "kind")
        return {(user, kind) for user, kind in done} == {
            (user, kind) for user in users for kind in SyncKind}

    await eventually(all_synced, 30, "every user's jobs to succeed")
    assert scheduler.ticks == 1


# --- a user's jobs ----------------------------------------------------------------------


async def test_a_users_jobs_hand_over_in_one_transaction_and_the_last_releases_the_lease(
    api: Api, sandbox: Sandbox
) -> None:
    await connect(api, sandbox, "user-1", "alice@example.com")
    jobs = await sync_now(api, "user-1", "activities", "health")
    assert [job["status"] for job in jobs] == ["SUCCESS", "SUCCESS"], jobs
    use_db(api)
    first, second = await SyncJob.filter(user_id="user-1").order_by("id")
    assert first.kind == SyncKind.ACTIVITIES and second.kind == SyncKind.HEALTH
    assert first.finished_at is not None and second.started_at == first.finished_at
    assert first.lease_token == second.lease_token is not None
    lease = await UserLease.get(user_id="user-1")
    assert (lease.owner, lease.expires_at) == (None, None)
    assert lease.token == second.lease_token
    assert not api.app[SCHEDULER]._runner._leases.is_held_here("user-1")


async def test_upserts_write_what_tortoise_reads_back_and_keep_first_seen(db_api: Api) -> None:
    first = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    later = first + timedelta(hours=2)
    activity: dict[str, Any] = {
        "garmin_activity_id": 2**40, "activity_type": "running", "name": "Morning é run",
        "start_time_utc": first, "start_time_local": "2026-01-02T04:04:05",
        "duration_seconds": 1800.5, "distance_meters": 5000.0, "calories": None,
        "average_hr": 140.0, "max_hr": None, "elevation_gain": 12.5,
        "raw_json": {"activityId": 2**40, "nested": {"list": [1, "ü", None]}},
    }
    day: dict[str, Any] = {
        "calendar_date": first.date(), "steps": 1234, "resting_hr": None, "sleep_seconds": 1,
        "sleep_score": 80, "average_stress": None, "body_battery_high": 90,
        "body_battery_low": 10, "hrv_last_night": 40,
        "raw_json": {"summary": {"totalSteps": 1234}, "sleep": None, "hrv": {}},
    }
    async with sql.transaction(SyncJob) as connection:
        assert await store.upsert_activities("user-1", [activity], first, connection) == 1
        assert await store.upsert_days("user-1", [day], first, connection) == 1
    changed = {**activity, "name": "renamed"}
    async with sql.transaction(SyncJob) as connection:
        assert await store.upsert_activities("user-1", [changed], later, connection) == 1
        assert await store.upsert_days("user-1", [], later, connection) == 0

    from service.models import Activity, DailyHealth

    [stored] = await Activity.filter(user_id="user-1")
    assert {name: getattr(stored, name) for name in activity} == changed
    assert (stored.first_seen, stored.updated_at) == (first, later)
    [stored_day] = await DailyHealth.filter(user_id="user-1")
    assert {name: getattr(stored_day, name) for name in day} == day
    assert (stored_day.first_seen, stored_day.updated_at) == (first, first)


async def test_the_session_row_loads_as_tortoise_would_load_it(db_api: Api) -> None:
    created = await GarminAuthenticationState.create(
        user_id="user-1", session_data="gs1.x.y", mfa_pending=True,
        mfa_expires_at=datetime(2026, 1, 1, tzinfo=UTC), version=3)
    loaded = await session_store.load("user-1")
    expected = await GarminAuthenticationState.get(user_id="user-1")
    assert loaded is not None and loaded.pk == created.pk
    fields = list(GarminAuthenticationState._meta.fields_map)
    assert {name: getattr(loaded, name) for name in fields} == {
        name: getattr(expected, name) for name in fields}
    assert await session_store.load("nobody") is None
    # the loaded row takes part in compare-and-set like any other
    assert await session_store.compare_and_set(loaded, status_reason="checked")
    assert (await GarminAuthenticationState.get(user_id="user-1")).version == 4


@pytest.mark.parametrize("steps", [2**31, -(2**31) - 1, float("inf"), float("nan")])
def test_a_number_out_of_its_columns_range_makes_the_day_malformed(steps: float) -> None:
    from service.sync.parsing import MalformedItem, day_fields

    with pytest.raises(MalformedItem):
        day_fields(datetime(2026, 1, 1, tzinfo=UTC).date(), {"summary": {"totalSteps": steps}})
    assert day_fields(datetime(2026, 1, 1, tzinfo=UTC).date(),
                      {"summary": {"totalSteps": 2**31 - 1}})["steps"] == 2**31 - 1


def test_an_activity_id_beyond_bigint_makes_the_activity_malformed() -> None:
    from service.sync.parsing import MalformedItem, activity_fields

    item = {"activityId": 2**63, "startTimeGMT": "2026-01-01 06:00:00"}
    with pytest.raises(MalformedItem):
        activity_fields(item)
    assert activity_fields({**item, "activityId": 2**63 - 1})["garmin_activity_id"] == 2**63 - 1


# --- the status read ------------------------------------------------------------------------


async def test_the_status_read_returns_the_row_and_every_cursor_in_one_query(
    db_api: Api, sandbox: Sandbox
) -> None:
    await connect(db_api, sandbox, "user-1", "alice@example.com")
    row, cursors = await session_store.load_for_status("user-1")
    assert row is not None and row.user_id == "user-1" and row.session_data
    assert sorted(cursor.kind for cursor in cursors) == [SyncKind.ACTIVITIES, SyncKind.HEALTH]
    assert all(cursor.user_id == "user-1" and cursor.next_sync_at for cursor in cursors)
    stored = await GarminAuthenticationState.get(user_id="user-1")
    assert (row.id, row.version, row.connected_at) == (
        stored.id, stored.version, stored.connected_at)


async def test_the_status_read_of_an_unknown_user_is_empty(db_api: Api) -> None:
    assert await session_store.load_for_status("nobody") == (None, [])


async def test_the_status_read_returns_cursors_of_a_user_without_a_row(db_api: Api) -> None:
    await SyncCursor.create(user_id="user-2", kind=SyncKind.HEALTH)
    row, cursors = await session_store.load_for_status("user-2")
    assert row is None
    assert [(cursor.user_id, cursor.kind) for cursor in cursors] == [("user-2", SyncKind.HEALTH)]


async def test_a_login_resumes_a_backed_off_cursor_and_creates_the_missing_one(
    db_api: Api,
) -> None:
    now = datetime.now(UTC)
    await SyncCursor.create(user_id="user-3", kind=SyncKind.ACTIVITIES, next_sync_at=None,
                            backoff_until=now + timedelta(hours=1), consecutive_failures=4,
                            last_error="Garmin answered 429", last_synced_date=now.date())
    await store.resume_cursors("user-3", now, 0)
    cursors = {cursor.kind: cursor for cursor in await SyncCursor.filter(user_id="user-3")}
    assert set(cursors) == set(SyncKind)
    for cursor in cursors.values():
        assert cursor.next_sync_at == now and cursor.backoff_until is None
        assert (cursor.consecutive_failures, cursor.last_error) == (0, None)
    assert cursors[SyncKind.ACTIVITIES].last_synced_date == now.date()  # progress is kept
