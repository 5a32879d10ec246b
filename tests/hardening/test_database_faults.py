"""PostgreSQL going away under the service: dropped connections and a stalled database.

A separate asyncpg connection plays the operator (or the failover): it terminates every
other backend of the test database, i.e. the app's pool, or holds a table lock so the app's
queries stall. The service must answer 503 `database-unavailable` (never 500) or reconnect
transparently, recover by itself, and never leave a half-written sync behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from service.config import ConfigError
from service.keys import DB_CONTEXT, SCHEDULER
from service.models import Activity, JobStatus, SyncCursor, SyncJob, SyncKind
from service.sandbox import day_end_clock, expected_activities
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import PG_URL, Api, Sandbox, connect, drain, raw_rows, use_db
from tests.support.faults import (
    backends_waiting_on_lock,
    not_a_500,
    problem,
    read_through_drop,
    table_locked,
    terminate_app_backends,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(not PG_URL,
                                reason="needs PostgreSQL (GARMIN_SYNC_TEST_DATABASE_URL)")


USER = "user-1"
ACCOUNT = "alice@example.com"
UNAVAILABLE = "database-unavailable"
RECOVERY_SECONDS = 5  # "recovers by itself": the same call answers 200 again within this


@pytest.fixture
async def operator() -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, outside the app's pool."""
    connection = await asyncpg.connect(PG_URL)
    yield connection
    await connection.close()


async def _session_row(api: Api) -> tuple[str, int]:
    rows = await read_through_drop(lambda: raw_rows(api))
    assert len(rows) == 1, rows
    return rows[0]["session_data"], rows[0]["version"]


async def _answers_200(api: Api, method: str, path: str, **kwargs: Any) -> bool:
    response = await api.client.request(method, path, headers=api.headers(USER), **kwargs)
    status, _ = await not_a_500(response)
    return status == 200


async def _post_sync(api: Api, *kinds: str) -> Any:
    return await api.client.post("/api/v1/garmin/sync", headers=api.headers(USER),
                                 json={"kinds": list(kinds)})


# --- dropped connections ------------------------------------------------------------------


async def test_first_call_after_a_connection_drop_is_503_or_reconnects_then_recovers(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi,
    operator: asyncpg.Connection,
) -> None:
    """Ten drops in a row (a restart or failover each): which answer the first call gets
    depends on how far the driver got in noticing the dead socket, so one drop proves
    little. The status cache is off: every call must reach the database."""
    api = await start_api(make_config(status={"cache_seconds": 0}))
    await connect(api, sandbox, USER, ACCOUNT)
    before = await _session_row(api)

    for _ in range(10):
        assert await terminate_app_backends(operator) >= 1
        response = await api.status(USER)

        if response.status != 200:  # a pooled connection that died: no transparent retry
            await problem(response, 503, UNAVAILABLE)
            assert response.headers["Retry-After"].isdigit()
        await eventually(lambda: _answers_200(api, "GET", "/api/v1/garmin/session/status"),
                         timeout=RECOVERY_SECONDS)

    assert (await (await api.status(USER)).json())["status"] == "VALID"
    assert await _session_row(api) == before


CALLS_ON_A_LOCKED_TABLE = {
    "status": ("GET", "/api/v1/garmin/session/status", None, "garmin_authentication_state"),
    "login": ("POST", "/api/v1/garmin/session/login",
              {"username": ACCOUNT, "password": "pw-correct-horse"},
              "garmin_authentication_state"),
    "sync": ("POST", "/api/v1/garmin/sync", {"kinds": ["health"]},
             "garmin_authentication_state"),
    "jobs": ("GET", "/api/v1/garmin/sync/jobs", None, "sync_job"),
    "activities": ("GET", "/api/v1/garmin/activities", None, "activity"),
}


@pytest.mark.parametrize("call", CALLS_ON_A_LOCKED_TABLE.values(),
                         ids=list(CALLS_ON_A_LOCKED_TABLE))
async def test_request_whose_backend_is_killed_mid_query_answers_503_and_the_next_succeeds(
    api: Api, sandbox: Sandbox, operator: asyncpg.Connection,
    call: tuple[str, str, dict[str, Any] | None, str],
) -> None:
    method, path, body, table = call
    await connect(api, sandbox, USER, ACCOUNT)
    before = await _session_row(api)

    async with table_locked(operator, table):
        pending = asyncio.ensure_future(
            api.client.request(method, path, headers=api.headers(USER), json=body))
        await eventually(lambda: backends_waiting_on_lock(operator, ""))  # stuck in the query
        await terminate_app_backends(operator)
        response = await pending

    await problem(response, 503, UNAVAILABLE)
    assert response.headers["Retry-After"].isdigit()
    # the same call works again by itself: no lease left held, no broken pool
    expected = 202 if path.endswith("/sync") else 200

    async def answers() -> bool:
        again = await api.client.request(method, path, headers=api.headers(USER), json=body)
        status, _ = await not_a_500(again)
        return status == expected

    await eventually(answers, timeout=RECOVERY_SECONDS)
    await drain(api)
    if not path.endswith("/login"):
        assert await _session_row(api) == before


async def test_requests_in_flight_during_a_drop_are_never_answered_500(
    api: Api, sandbox: Sandbox, operator: asyncpg.Connection
) -> None:
    """Whatever state each pooled connection is in when its backend dies (idle, mid-query,
    being reset on release), the caller gets a 200 or a 503 problem: 10 rounds of 40 calls
    over four endpoints, the backends killed while they run."""
    await connect(api, sandbox, USER, ACCOUNT)
    paths = ["/api/v1/garmin/session/status", "/api/v1/garmin/sync/jobs",
             "/api/v1/garmin/activities",
             "/api/v1/garmin/health/daily?from=2024-01-01&to=2024-01-31"]
    answers: dict[int, int] = {}

    async def call(index: int) -> None:
        response = await api.client.get(paths[index % len(paths)], headers=api.headers(USER))
        status, body = await not_a_500(response)
        if status != 200:
            assert body["type"].endswith("/" + UNAVAILABLE), body
        answers[status] = answers.get(status, 0) + 1

    for _ in range(10):
        calls = [asyncio.ensure_future(call(index)) for index in range(40)]
        await asyncio.sleep(0)  # let the calls reach the app before the backends die
        await terminate_app_backends(operator)
        await asyncio.gather(*calls)

    assert set(answers) <= {200, 503}, answers
    assert answers.get(200, 0) > 0
    # and the pool is whole: more concurrent calls than it has connections all succeed
    pool_size = api.app[DB_CONTEXT].db().pool_maxsize

    async def all_succeed() -> bool:
        results = await asyncio.gather(*(
            _answers_200(api, "GET", paths[index % len(paths)])
            for index in range(2 * pool_size)))
        return all(results)

    await eventually(all_succeed, timeout=RECOVERY_SECONDS)


# --- sync jobs ----------------------------------------------------------------------------


async def test_sync_job_killed_inside_its_write_transaction_fails_without_partial_rows(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi,
    operator: asyncpg.Connection,
) -> None:
    # the scheduler runs (fast ticks, short lease) only to recover a job left RUNNING
    api = await start_api(make_config(sync={
        "enabled": True, "tick_seconds": 0.1, "lease_seconds": 5,
        "initial_spread_seconds": 3600}))
    await connect(api, sandbox, USER, ACCOUNT)
    before = await _session_row(api)
    use_db(api)
    await SyncCursor.filter(user_id=USER).update(
        next_sync_at=datetime.now(UTC) + timedelta(days=1))  # only the manual sync runs
    cursor_before = await SyncCursor.get(user_id=USER, kind=SyncKind.ACTIVITIES)

    async with table_locked(operator, "activity"):
        response = await _post_sync(api, "activities")
        assert response.status == 202, await response.text()
        job_id = (await response.json())["jobs"][0]["id"]
        # the job fetched everything and is inside its transaction, blocked on the upsert
        await eventually(lambda: backends_waiting_on_lock(operator, 'INSERT INTO "activity"'))
        assert await terminate_app_backends(operator) >= 1

    async def job_final() -> bool:
        use_db(api)
        job = await read_through_drop(lambda: SyncJob.get(id=job_id))
        return job.status not in (JobStatus.PENDING, JobStatus.RUNNING)

    await eventually(job_final, timeout=10)  # at once, or recovered by the scheduler
    use_db(api)
    job = await read_through_drop(lambda: SyncJob.get(id=job_id))
    assert job.status == JobStatus.FAILED, (job.status, job.error)
    assert job.items_upserted == 0
    assert await read_through_drop(lambda: Activity.filter(user_id=USER).count()) == 0
    cursor = await read_through_drop(
        lambda: SyncCursor.get(user_id=USER, kind=SyncKind.ACTIVITIES))
    assert (cursor.last_synced_date, cursor.last_success_at) == (None, None)
    assert cursor.last_synced_date == cursor_before.last_synced_date
    assert await _session_row(api) == before

    # a later sync goes through and stores the lot
    await drain(api)
    response = await _post_sync(api, "activities")
    assert response.status == 202, await response.text()
    later = (await response.json())["jobs"][0]["id"]
    await drain(api)
    use_db(api)
    job = await SyncJob.get(id=later)
    assert job.status == JobStatus.SUCCESS, job.error
    assert job.items_upserted > 0
    assert await Activity.filter(user_id=USER).count() == job.items_upserted


async def test_sync_job_whose_idle_connections_die_while_it_waits_on_garmin_succeeds(
    api: Api, sandbox: Sandbox, operator: asyncpg.Connection
) -> None:
    sandbox.state.clock = day_end_clock()  # every activity of today has started
    await connect(api, sandbox, USER, ACCOUNT, latency_ms=300)
    account = sandbox.state.get_account(ACCOUNT)
    assert account is not None
    calls = account.data_calls["activities"]

    response = await _post_sync(api, "activities")
    assert response.status == 202, await response.text()
    job_id = (await response.json())["jobs"][0]["id"]
    await eventually(lambda: account.data_calls["activities"] > calls)  # at Garmin now
    assert await terminate_app_backends(operator) >= 1
    await drain(api)

    use_db(api)
    job = await read_through_drop(lambda: SyncJob.get(id=job_id))
    assert job.status == JobStatus.SUCCESS, job.error
    today = datetime.now(UTC).date()
    first = today - timedelta(days=29)
    expected = {item["activityId"] for item in expected_activities(account, today)
                if first.isoformat() <= item["startTimeLocal"][:10]}
    stored = set(await Activity.filter(user_id=USER).values_list("garmin_activity_id",
                                                                   flat=True))
    assert stored == expected


async def test_scheduler_survives_repeated_drops_and_then_syncs_a_new_user(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi,
    operator: asyncpg.Connection,
) -> None:
    api = await start_api(make_config(sync={
        "enabled": True, "tick_seconds": 0.1, "initial_spread_seconds": 0, "backfill_days": 3,
        "activities_interval_minutes": 600, "health_interval_minutes": 600}))
    scheduler = api.app[SCHEDULER]
    for _ in range(3):
        target = scheduler.ticks + 2
        await terminate_app_backends(operator)
        await eventually(lambda t=target: scheduler.ticks >= t, timeout=RECOVERY_SECONDS)
    assert scheduler.running

    await eventually(lambda: _answers_200(api, "GET", "/readyz"), timeout=RECOVERY_SECONDS)
    await connect(api, sandbox, USER, ACCOUNT)

    async def both_synced() -> bool:
        use_db(api)
        done = await read_through_drop(
            lambda: SyncJob.filter(user_id=USER, status=JobStatus.SUCCESS).count())
        return done == 2

    await eventually(both_synced, timeout=10)


# --- a stalled database -------------------------------------------------------------------


async def test_locked_auth_table_stalls_status_while_healthz_answers_at_once(
    api: Api, sandbox: Sandbox, operator: asyncpg.Connection
) -> None:
    """`/readyz` only pings (SELECT 1), which a table lock does not stop: it stays 200 while
    one request is stuck. Liveness never touches the database."""
    await connect(api, sandbox, USER, ACCOUNT)

    async with table_locked(operator, "garmin_authentication_state"):
        stuck = asyncio.ensure_future(api.status(USER))
        await eventually(lambda: backends_waiting_on_lock(operator, "SELECT"))
        health = await api.client.get("/healthz")
        ready = await api.client.get("/readyz")
        # both probes answered while the status call is still stuck on the lock
        assert not stuck.done()
        assert await backends_waiting_on_lock(operator, "SELECT") == 1

    assert health.status == 200
    assert ready.status == 200, await ready.text()
    response = await stuck
    assert response.status == 200  # the lock went away: the stuck call finishes normally


async def test_readyz_answers_503_within_two_seconds_when_stuck_queries_hold_the_pool(
    api: Api, sandbox: Sandbox, operator: asyncpg.Connection
) -> None:
    await connect(api, sandbox, USER, ACCOUNT)
    pool_size = api.app[DB_CONTEXT].db().pool_maxsize

    async with table_locked(operator, "sync_job"):
        # job listings read through the main pool (status reads have a pool of their own)
        stuck = [asyncio.ensure_future(api.client.get(
                     "/api/v1/garmin/sync/jobs", headers=api.headers(f"{USER}-{index}")))
                 for index in range(pool_size + 2)]
        await eventually(
            lambda: _waiting_at_least(operator, pool_size), timeout=RECOVERY_SECONDS)
        started = time.perf_counter()
        ready = await api.client.get("/readyz")
        took = time.perf_counter() - started
        health = await api.client.get("/healthz")
        status = await api.status(USER)  # its own pool: answers while the main one is held
        assert not any(call.done() for call in stuck)

    body = await problem(ready, 503, "not-ready")
    assert body["failing"] == ["database"]
    assert took < 2.0, took
    assert health.status == 200
    assert status.status == 200, await status.text()
    for call in stuck:
        assert (await call).status == 200  # released with the lock: all of them finish


async def _waiting_at_least(operator: asyncpg.Connection, count: int) -> bool:
    return await backends_waiting_on_lock(operator, "SELECT") >= count


async def test_request_on_a_stalled_table_answers_503_within_the_statement_timeout(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi,
    operator: asyncpg.Connection,
) -> None:
    """A request must not wait on the database for as long as a lock is held (a stuck
    migration, a long transaction, a vacuum full): it gives up after
    `database.statement_timeout_seconds` and answers 503, freeing its pool connection."""
    try:
        config = make_config(database={"statement_timeout_seconds": 1})
    except ConfigError as exc:
        pytest.fail(f"no bound on database waits ({exc}): under a held lock every request "
                    "hangs until the lock goes away, and the pool runs dry")
    api = await start_api(config)
    await connect(api, sandbox, USER, ACCOUNT)

    async with table_locked(operator, "garmin_authentication_state"):
        started = time.perf_counter()
        try:
            async with asyncio.timeout(10):
                response = await api.status(USER)
        except TimeoutError:
            pytest.fail("the status request still hangs after 10 s on a locked table")
        took = time.perf_counter() - started

    await problem(response, 503, UNAVAILABLE)
    assert 1.0 <= took < 3.0, took
    assert (await api.status(USER)).status == 200
