"""The in-process scheduler: periodic syncs, concurrency, spreading, recovery and shutdown.

Users are mostly connected through an app instance with the scheduler off, and the
scheduler runs in a second instance on the same database: the scheduler then starts with
every user already due, so nothing depends on how a tick and a login interleave.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from service.app import create_app
from service.config import Config, ConfigError
from service.keys import LEASES, SCHEDULER
from service.models import (
    JobStatus,
    JobTrigger,
    SyncCursor,
    SyncJob,
    SyncKind,
    UserLease,
)
from service.sync.scheduler import SqliteSchedulerLock
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import ENGINES, PG_URL, Api, Sandbox, connect, use_db
from tests.support.waiting import eventually

ALICE = "alice@example.com"
BOB = "bob@example.com"
KINDS = {SyncKind.ACTIVITIES, SyncKind.HEALTH}
LONG_MINUTES = 600  # no second round of syncs can start while a test runs


def scheduled(make_config: MakeConfig, garmin: dict[str, Any] | None = None,
              **sync: Any) -> Config:
    """A configuration with the scheduler on, ticking fast, new users due at once."""
    values = {"enabled": True, "tick_seconds": 0.1, "initial_spread_seconds": 0,
              "backfill_days": 3, "activities_interval_minutes": LONG_MINUTES,
              "health_interval_minutes": LONG_MINUTES, **sync}
    return make_config(sync=values, **({"garmin": garmin} if garmin else {}))


def unscheduled(make_config: MakeConfig) -> Config:
    """The scheduler off; users connected here are due at once for a scheduler elsewhere."""
    return make_config(sync={"enabled": False, "initial_spread_seconds": 0})


async def wait_for_ticks(api: Api, more: int) -> None:
    """Let the scheduler of `api` tick `more` more times."""
    scheduler = api.app[SCHEDULER]
    target = scheduler.ticks + more

    async def ticked() -> bool:
        return bool(scheduler.ticks >= target)

    await eventually(ticked, 30, f"{more} scheduler ticks")


async def jobs_of(api: Api, user: str | None = None) -> list[SyncJob]:
    use_db(api)
    query = SyncJob.all() if user is None else SyncJob.filter(user_id=user)
    return await query.order_by("id")


def successes(jobs: list[SyncJob]) -> set[tuple[str, SyncKind]]:
    return {(job.user_id, job.kind) for job in jobs if job.status == JobStatus.SUCCESS}


async def wait_for_synced(api: Api, users: list[str], timeout: float = 30) -> None:
    """Until every user has a SUCCESS job of both kinds."""
    wanted = {(user, kind) for user in users for kind in KINDS}

    async def done() -> bool:
        return wanted <= successes(await jobs_of(api))

    await eventually(done, timeout, f"both kinds synced for {len(users)} user(s)")


async def _no_active_jobs(api: Api) -> bool:
    return bool(api.app[SCHEDULER].active_jobs == 0)


async def unfinished(api: Api) -> list[SyncJob]:
    use_db(api)
    return await SyncJob.filter(status__in=[JobStatus.RUNNING, JobStatus.PENDING])


# --- periodic syncs ------------------------------------------------------------------------


async def test_connected_user_is_synced_without_a_manual_call(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    api = await start_api(scheduled(make_config))
    await connect(api, sandbox, "user-1", ALICE)
    await wait_for_synced(api, ["user-1"])
    assert api.app[SCHEDULER].ticks >= 1
    listing = await api.client.get("/api/v1/garmin/sync/jobs", headers=api.headers("user-1"))
    jobs = (await listing.json())["items"]
    assert {job["trigger"] for job in jobs} == {"scheduled"}
    assert {job["kind"] for job in jobs if job["status"] == "SUCCESS"} == {"activities",
                                                                            "health"}
    account = sandbox.state.get_account(ALICE)
    assert account is not None and account.data_calls["activities"] >= 1


def _most_users_running_at_once(jobs: list[SyncJob]) -> int:
    """From the jobs' started/finished times: the most distinct users with a job running."""
    ran = [job for job in jobs if job.started_at is not None]
    assert all(job.finished_at is not None for job in ran)
    most = 0
    for probe in ran:
        at = probe.started_at
        assert at is not None
        running = {job.user_id for job in ran
                   if job.started_at is not None and job.finished_at is not None
                   and job.started_at <= at < job.finished_at}
        most = max(most, len(running))
    return most


async def test_fifty_users_are_each_synced_once_per_kind_with_bounded_concurrency(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    users = 50
    owner_of = {f"user-{index:02d}": f"athlete{index}@example.com" for index in range(users)}
    setup = await start_api(unscheduled(make_config))
    await asyncio.gather(*(connect(setup, sandbox, user, username)
                           for user, username in owner_of.items()))
    sandbox.state.clear_requests()

    api = await start_api(scheduled(make_config, max_concurrent_users=4, backfill_days=2))
    await wait_for_synced(api, list(owner_of), timeout=90)
    await eventually(lambda: _no_active_jobs(api), 30, "the last jobs to finish")

    jobs = await jobs_of(api)
    per_kind: dict[tuple[str, SyncKind], int] = defaultdict(int)
    for job in jobs:
        assert job.trigger == JobTrigger.SCHEDULED
        assert job.status in (JobStatus.SUCCESS, JobStatus.SKIPPED), (job.id, job.error)
        if job.status == JobStatus.SUCCESS:
            per_kind[(job.user_id, job.kind)] += 1
    assert per_kind == {(user, kind): 1 for user in owner_of for kind in KINDS}

    most = _most_users_running_at_once(jobs)
    assert 2 <= most <= 4, most

    attributed = [r for r in sandbox.state.requests
                  if r.caller is not None and r.token_account is not None]
    assert {r.caller for r in attributed} == set(owner_of)
    crossed = [r for r in attributed
               if r.token_account.casefold() != owner_of[r.caller].casefold()]
    assert crossed == []


async def test_new_users_first_syncs_are_spread_over_the_initial_spread(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    spread = 120
    # the scheduler stays off so nothing moves the first next_sync_at after a login
    api = await start_api(make_config(sync={"enabled": False, "initial_spread_seconds": spread}))
    users = [f"user-{index}" for index in range(10)]
    before = datetime.now(UTC)
    for index, user in enumerate(users):
        await connect(api, sandbox, user, f"athlete{index}@example.com")
    after = datetime.now(UTC)
    due: list[datetime] = []
    for user in users:
        body = await (await api.status(user)).json()
        due += [datetime.fromisoformat(body["sync"][kind.value]["next_sync_at"])
                for kind in KINDS]
    assert len(due) == 2 * len(users)
    assert all(before <= at <= after + timedelta(seconds=spread) for at in due), due
    assert len(set(due)) > 1
    assert max(due) - min(due) > timedelta(seconds=1)


# --- recovery of stale jobs ----------------------------------------------------------------


async def _stale_setup(start_api: StartApi, make_config: MakeConfig) -> Api:
    """An instance without the scheduler, only to create the schema and insert rows."""
    setup = await start_api(unscheduled(make_config))
    use_db(setup)
    return setup


async def _running_job(user: str, token: int | None) -> SyncJob:
    return await SyncJob.create(
        user_id=user, kind=SyncKind.ACTIVITIES, trigger=JobTrigger.SCHEDULED,
        status=JobStatus.RUNNING, started_at=datetime.now(UTC) - timedelta(minutes=3),
        worker="dead-host:1:abc", lease_token=token)


async def test_running_job_without_a_lease_is_failed_when_the_scheduler_starts(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    await _stale_setup(start_api, make_config)
    job = await _running_job("user-1", token=3)
    api = await start_api(scheduled(make_config))
    use_db(api)
    await job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error is not None and "worker stopped" in job.error
    assert job.finished_at is not None


async def test_running_job_whose_lease_expired_is_failed_when_the_scheduler_starts(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    await _stale_setup(start_api, make_config)
    job = await _running_job("user-1", token=5)
    await UserLease.create(user_id="user-1", owner="dead-host:1:abc/123", token=5,
                           expires_at=datetime.now(UTC) - timedelta(seconds=30),
                           purpose="sync:activities")
    api = await start_api(scheduled(make_config))
    use_db(api)
    await job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error is not None and "worker stopped" in job.error


async def test_running_job_whose_lease_was_taken_over_is_failed(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    await _stale_setup(start_api, make_config)
    job = await _running_job("user-1", token=5)
    await UserLease.create(user_id="user-1", owner="live-host:2:def/456", token=6,
                           expires_at=datetime.now(UTC) + timedelta(minutes=5),
                           purpose="login")
    api = await start_api(scheduled(make_config))
    use_db(api)
    await job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error is not None and "worker stopped" in job.error


async def test_running_job_whose_lease_is_held_stays_running(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    await _stale_setup(start_api, make_config)
    job = await _running_job("user-1", token=7)
    await UserLease.create(user_id="user-1", owner="live-host:2:def/456", token=7,
                           expires_at=datetime.now(UTC) + timedelta(minutes=5),
                           purpose="sync:activities")
    api = await start_api(scheduled(make_config))
    await wait_for_ticks(api, 3)  # every tick looks for stale jobs again
    use_db(api)
    await job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert job.finished_at is None and job.error is None


async def test_pending_job_older_than_the_lease_is_failed(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    await _stale_setup(start_api, make_config)
    old = await SyncJob.create(user_id="user-1", kind=SyncKind.HEALTH,
                               trigger=JobTrigger.MANUAL)
    await SyncJob.filter(id=old.id).update(created_at=datetime.now(UTC) - timedelta(hours=1))
    api = await start_api(scheduled(make_config))
    use_db(api)
    await old.refresh_from_db()
    assert old.status == JobStatus.FAILED
    assert old.error is not None and "never started" in old.error


# --- shutdown ------------------------------------------------------------------------------


async def _running(api: Api) -> list[SyncJob]:
    use_db(api)
    return await SyncJob.filter(status=JobStatus.RUNNING)


async def test_job_still_running_after_the_grace_is_cancelled_and_releases_its_lease(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    setup = await start_api(unscheduled(make_config))
    await connect(setup, sandbox, "user-1", ALICE)
    account = sandbox.state.get_account(ALICE)
    assert account is not None
    account.latency_ms = 2000
    api = await start_api(scheduled(make_config, {"timeout_seconds": 10},
                                    shutdown_grace_seconds=0.2, backfill_days=1))

    async def started() -> bool:
        return bool(await _running(setup))

    await eventually(started, 30, "a job to start")
    [job] = await _running(setup)
    await api.client.close()

    use_db(setup)
    await job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error == "cancelled at shutdown"
    assert job.finished_at is not None
    assert await unfinished(setup) == []
    lease = await UserLease.get(user_id="user-1")
    assert lease.owner is None and lease.expires_at is None


async def test_job_finishing_within_the_grace_succeeds_before_close_returns(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    setup = await start_api(unscheduled(make_config))
    await connect(setup, sandbox, "user-1", ALICE)
    account = sandbox.state.get_account(ALICE)
    assert account is not None
    account.latency_ms = 500
    # Two days, not one: just after midnight UTC none of today's sandbox activities has
    # started yet, and the activities job would store nothing.
    api = await start_api(scheduled(make_config, shutdown_grace_seconds=10, backfill_days=2))

    async def started() -> bool:
        return bool(await _running(setup))

    await eventually(started, 30, "a job to start")
    [job] = await _running(setup)
    closing = datetime.now(UTC)
    await api.client.close()
    closed = datetime.now(UTC)

    use_db(setup)
    await job.refresh_from_db()
    assert job.status == JobStatus.SUCCESS, job.error
    assert job.finished_at is not None and closing < job.finished_at <= closed
    assert job.items_upserted >= 1
    assert await unfinished(setup) == []
    lease = await UserLease.get(user_id="user-1")
    assert lease.owner is None


# --- one scheduler per SQLite file ---------------------------------------------------------


@pytest.mark.skipif(bool(PG_URL), reason="the scheduler lock file exists on SQLite only; "
                    "PostgreSQL replicas share the work through the database")
async def test_second_scheduler_on_the_same_sqlite_file_refuses_to_start(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    first = await start_api(scheduled(make_config))
    assert first.app[SCHEDULER].running
    runner = web.AppRunner(create_app(scheduled(make_config)))
    try:
        with pytest.raises(ConfigError) as refused:
            await runner.setup()
    finally:
        await runner.cleanup()  # closes what the failed startup had opened
    assert refused.value.key == "sync.enabled"
    assert "sync.enabled" in str(refused.value)


@pytest.mark.skipif(bool(PG_URL), reason="the scheduler lock file exists on SQLite only; "
                    "PostgreSQL replicas share the work through the database")
async def test_scheduler_can_start_on_the_sqlite_file_once_the_previous_one_stopped(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    first = await start_api(scheduled(make_config))
    assert first.app[SCHEDULER].running
    await first.client.close()
    second = await start_api(scheduled(make_config))
    assert second.app[SCHEDULER].running


@pytest.mark.skipif(bool(PG_URL), reason="the scheduler lock file exists on SQLite only; "
                    "PostgreSQL replicas share the work through the database")
async def test_instance_without_scheduler_starts_next_to_a_scheduler_on_sqlite(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    first = await start_api(scheduled(make_config))
    assert first.app[SCHEDULER].running
    second = await start_api(make_config(sync={"enabled": False}))
    assert not second.app[SCHEDULER].running
    response = await second.status("user-1")
    assert response.status == 200


def test_scheduler_lock_file_is_readable_by_this_user_only(tmp_path: Path) -> None:
    lock = SqliteSchedulerLock(f"sqlite://{tmp_path}/db/garmin-sync.sqlite3")
    lock.acquire()
    try:
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
        assert lock.path.read_text().strip() == str(os.getpid())
    finally:
        lock.release()


def test_scheduler_lock_file_left_world_readable_is_made_private(tmp_path: Path) -> None:
    lock = SqliteSchedulerLock(f"sqlite://{tmp_path}/garmin-sync.sqlite3")
    lock.path.write_text("12345 and more than a pid\n")
    lock.path.chmod(0o644)
    lock.acquire()
    try:
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600
        assert lock.path.read_text() == f"{os.getpid()}\n"
    finally:
        lock.release()


# --- busy users ----------------------------------------------------------------------------


async def test_user_held_by_a_login_is_left_due_and_synced_once_it_ends(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    setup = await start_api(unscheduled(make_config))
    await connect(setup, sandbox, "user-busy", ALICE)
    await connect(setup, sandbox, "user-free", BOB)
    login = await setup.app[LEASES].acquire("user-busy", "login")
    assert login is not None

    api = await start_api(scheduled(make_config))
    await wait_for_synced(api, ["user-free"])
    await wait_for_ticks(api, 5)
    assert await jobs_of(api, "user-busy") == []  # not claimed, so never recorded SKIPPED

    await setup.app[LEASES].release(login)
    await wait_for_synced(api, ["user-busy"])
    jobs = await jobs_of(api, "user-busy")
    assert [job.status for job in jobs] == [JobStatus.SUCCESS, JobStatus.SUCCESS]


# --- paused users --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_paused_user_is_never_scheduled_until_a_new_login(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    setup = await start_api(unscheduled(make_config))
    await connect(setup, sandbox, "user-paused", ALICE)
    await connect(setup, sandbox, "user-active", BOB)
    sandbox.state.revoke_oauth1(ALICE)
    sandbox.state.expire_access_tokens(ALICE)
    status = await (await setup.status("user-paused", refresh=True)).json()
    assert status["status"] == "EXPIRED", status
    use_db(setup)
    cursors = await SyncCursor.filter(user_id="user-paused")
    assert {cursor.kind for cursor in cursors} == KINDS
    assert all(cursor.next_sync_at is None for cursor in cursors)
    alice = sandbox.state.get_account(ALICE)
    assert alice is not None
    calls_before = sum(alice.data_calls.values())

    api = await start_api(scheduled(make_config))
    await wait_for_synced(api, ["user-active"])
    await wait_for_ticks(api, 5)
    assert await jobs_of(api, "user-paused") == []
    assert sum(alice.data_calls.values()) == calls_before

    response = await api.login("user-paused", ALICE)
    assert response.status == 200, await response.text()
    await wait_for_synced(api, ["user-paused"])
    resumed = await jobs_of(api, "user-paused")
    assert {job.trigger for job in resumed} == {JobTrigger.SCHEDULED}
    assert sum(alice.data_calls.values()) > calls_before
