"""A use cancelled around its refresh still stores the rotated refresh token.

A DI refresh retires the refresh token it presents: once a use has refreshed, the stored
session is dead at Garmin until the new one is written back. A sync job cancelled (a task
cancel, the app shutting down) or a live status check cancelled after the engine refreshed,
or while the call that refreshes still runs in its pool thread, must still write it back,
or the next use presents the retired token (a reuse at Garmin) and the session expires.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from service.keys import CIPHER, METRICS, RUNNER, SESSIONS
from service.models import GarminAuthenticationState, JobStatus, SyncJob
from service.store import sessions as session_store
from service.store.vault import SESSION
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import ALICE, Api, Sandbox, connect, drain, sync_now, use_db
from tests.support.uses import held_call
from tests.support.waiting import eventually

USER = "user-1"
# a held call waits for the test: before the real call (the refresh lands after the cancel)
# or after it (the refresh happened, the job has not written it back)
WHEN = pytest.mark.parametrize("before", [True, False],
                               ids=["refresh-after-the-cancel", "refresh-before-the-cancel"])


def di_config(make_config: MakeConfig, **sync: Any) -> Any:
    return make_config(garmin={"engine": "di"},
                       sync={"enabled": False, "backfill_days": 1, **sync})


@pytest.fixture
async def di_api(make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox) -> Api:
    api = await start_api(di_config(make_config))
    # the access token is expired at once: every use refreshes before its first call
    await connect(api, sandbox, USER, ALICE, di_access_lifetime_seconds=0, history_days=1)
    return api


async def stored(api: Api) -> GarminAuthenticationState:
    use_db(api)
    row = await session_store.load(USER)
    assert row is not None and row.session_data
    return row


def refresh_token(api: Api, row: GarminAuthenticationState) -> str:
    plain = api.app[CIPHER].decrypt(row.session_data, user_id=USER, purpose=SESSION)
    token = json.loads(plain)["refresh_token"]
    assert isinstance(token, str)
    return token


def persisted(api: Api) -> float:
    value = api.app[METRICS].registry.get_sample_value(
        "garmin_sync_session_refreshes_persisted_total")
    return value or 0.0


def job_tasks(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[asyncio.Task[Any]]:
    """The tasks running each user's sync jobs on `api` from now on, as they start."""
    runner = api.app[RUNNER]
    run = runner.run_for_user
    tasks: list[asyncio.Task[Any]] = []

    async def recorded(*args: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        await run(*args)

    monkeypatch.setattr(runner, "run_for_user", recorded)
    return tasks


async def start_sync(api: Api) -> None:
    response = await api.client.post("/api/v1/garmin/sync", headers=api.headers(USER),
                                     json={"kinds": ["activities"]})
    assert response.status == 202, await response.text()


async def cancelled_job(api: Api) -> SyncJob:
    use_db(api)
    [job] = await SyncJob.filter(user_id=USER)
    assert (job.status, job.error) == (JobStatus.FAILED, "cancelled at shutdown")
    return job


async def next_job_syncs(api: Api, sandbox: Sandbox) -> None:
    """The next job refreshes with the stored token: fine only if it is the rotated one."""
    jobs = await sync_now(api, USER, "activities")
    assert [job["status"] for job in jobs] == ["SUCCESS"], jobs
    alice = sandbox.state.require_account(ALICE)
    assert alice.di_refresh_reuses == 0, "the stored refresh token had been retired"
    assert (await stored(api)).status == "VALID"


@WHEN
async def test_a_sync_job_cancelled_around_its_refresh_stores_the_rotated_token(
    di_api: Api, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, before: bool,
) -> None:
    alice = sandbox.state.require_account(ALICE)
    old = refresh_token(di_api, await stored(di_api))
    tasks = job_tasks(di_api, monkeypatch)
    with held_call(monkeypatch, USER, before) as held:
        await start_sync(di_api)
        await eventually(held.reached.is_set, 10, "the job's first Garmin call")
        assert alice.di_refreshes == (0 if before else 1)
        [task] = tasks
        task.cancel()
        held.release()
        await drain(di_api)

    assert task.cancelled()
    await cancelled_job(di_api)
    assert refresh_token(di_api, await stored(di_api)) != old
    assert alice.di_refreshes == 1
    assert persisted(di_api) == 1
    await next_job_syncs(di_api, sandbox)


async def test_a_sync_job_cancelled_at_shutdown_stores_the_token_its_running_call_rotated(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = await start_api(di_config(make_config))
    await connect(other, sandbox, USER, ALICE, di_access_lifetime_seconds=0, history_days=1)
    alice = sandbox.state.require_account(ALICE)
    old = refresh_token(other, await stored(other))
    api = await start_api(di_config(make_config, shutdown_grace_seconds=0))
    tasks = job_tasks(api, monkeypatch)
    with held_call(monkeypatch, USER, before=True) as held:
        await start_sync(api)
        await eventually(held.reached.is_set, 10, "the job's first Garmin call")
        closing = asyncio.ensure_future(api.client.close())
        await eventually(lambda: tasks[0].cancelling(), 10, "the shutdown to cancel the job")
        assert alice.di_refreshes == 0  # the held call refreshes once let go
        held.release()
        await closing

    await cancelled_job(other)
    assert refresh_token(other, await stored(other)) != old
    assert alice.di_refreshes == 1
    assert persisted(api) == 1
    await next_job_syncs(other, sandbox)


@WHEN
@pytest.mark.parametrize("by", ["cancel", "shutdown"])
async def test_a_live_check_cancelled_around_its_refresh_stores_the_rotated_token(
    di_api: Api, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, before: bool, by: str,
) -> None:
    alice = sandbox.state.require_account(ALICE)
    old = refresh_token(di_api, await stored(di_api))
    sessions = di_api.app[SESSIONS]
    with held_call(monkeypatch, USER, before) as held:
        asking = asyncio.ensure_future(sessions.status(USER, refresh=True))
        await eventually(held.reached.is_set, 10, "the live check's Garmin call")
        check = sessions._live_checks[USER]
        if by == "cancel":
            check.cancel()
        else:
            closing = asyncio.ensure_future(sessions.close())  # as the app's shutdown does
            await eventually(check.cancelling, 10, "the shutdown to cancel the check")
        held.release()
        with pytest.raises(asyncio.CancelledError):
            await asking
        if by == "shutdown":
            await closing

    assert check.cancelled()
    assert refresh_token(di_api, await stored(di_api)) != old
    assert alice.di_refreshes == 1
    assert persisted(di_api) == 1
    live = await (await di_api.status(USER, refresh=True)).json()
    assert (live["status"], live["checked"]) == ("VALID", "live")
    assert alice.di_refresh_reuses == 0
