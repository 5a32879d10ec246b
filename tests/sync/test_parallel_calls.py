"""A job's Garmin calls run several at once: bounded per user and by the pool, with one
token refresh for all of them, and the first failure stopping the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from service.config import Config
from service.garmin.endpoints import all_of
from service.keys import GATEWAY
from service.sandbox import Fault
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import ENGINES, Api, Sandbox, connect, refreshes, sync_now
from tests.support.waiting import eventually

ALICE = "alice@example.com"
BOB = "bob@example.com"


def _config(make_config: MakeConfig, *, threads: int, calls_per_user: int,
            backfill_days: int) -> Config:
    return make_config(
        garmin={"executor_threads": threads},
        sync={"enabled": False, "calls_per_user": calls_per_user,
              "backfill_days": backfill_days})


@contextmanager
def pool_samples(api: Api, seen: list[tuple[int, int]]) -> Iterator[None]:
    """Record (running, queued) calls of the app's Garmin pool every few milliseconds."""
    gateway = api.app[GATEWAY]

    async def sample() -> None:
        while True:
            seen.append((gateway.busy_threads, gateway.queue_depth))
            await asyncio.sleep(0.003)

    task = asyncio.ensure_future(sample())
    try:
        yield
    finally:
        task.cancel()


async def test_a_users_calls_run_up_to_calls_per_user_at_once(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    api = await start_api(_config(make_config, threads=8, calls_per_user=3, backfill_days=4))
    await connect(api, sandbox, "user-1", ALICE, latency_ms=150)
    seen: list[tuple[int, int]] = []
    with pool_samples(api, seen):
        jobs = await sync_now(api, "user-1", "health")
    assert [job["status"] for job in jobs] == ["SUCCESS"]
    assert max(running for running, _ in seen) == 3
    account = sandbox.state.require_account(ALICE)
    assert account.api_calls == 1 + 3 * 4  # the profile, then three sources for each day


async def test_sync_calls_never_queue_beyond_the_pools_threads(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    api = await start_api(_config(make_config, threads=2, calls_per_user=8, backfill_days=4))
    await connect(api, sandbox, "user-1", ALICE, latency_ms=60)
    await connect(api, sandbox, "user-2", BOB, latency_ms=60)
    seen: list[tuple[int, int]] = []
    with pool_samples(api, seen):
        both = await asyncio.gather(sync_now(api, "user-1", "health"),
                                    sync_now(api, "user-2", "health"))
    assert [job["status"] for jobs in both for job in jobs] == ["SUCCESS", "SUCCESS"]
    assert max(running for running, _ in seen) == 2
    assert max(running + queued for running, queued in seen) <= 2


async def test_a_login_during_a_saturating_sync_waits_for_one_call_not_the_whole_job(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    api = await start_api(_config(make_config, threads=2, calls_per_user=8, backfill_days=10))
    await connect(api, sandbox, "user-1", ALICE, latency_ms=80)
    sandbox.add(BOB)
    job = asyncio.ensure_future(sync_now(api, "user-1", "health"))
    await eventually(lambda: sandbox.state.require_account(ALICE).api_calls >= 2, 10,
                     "the job's second call", interval=0.005)
    assert (await api.login("user-2", BOB)).status == 200
    calls_when_logged_in = sandbox.state.require_account(ALICE).api_calls
    assert [job["status"] for job in await job] == ["SUCCESS"]
    assert calls_when_logged_in < 1 + 3 * 10  # the login did not wait for the job's calls


@pytest.mark.parametrize("engine", ENGINES)
async def test_an_access_token_revoked_mid_job_is_refreshed_once_for_all_parallel_calls(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox, engine: str
) -> None:
    api = await start_api(_config(make_config, threads=8, calls_per_user=6, backfill_days=4))
    await connect(api, sandbox, "user-1", ALICE, latency_ms=150)
    account = sandbox.state.require_account(ALICE)
    before = refreshes(sandbox, engine)
    job = asyncio.ensure_future(sync_now(api, "user-1", "health"))
    # the profile answered; six day calls in flight
    await eventually(lambda: account.api_calls >= 1 + 6, 10, "six day calls", interval=0.002)
    assert sandbox.state.expire_access_tokens(ALICE) >= 1
    assert [job["status"] for job in await job] == ["SUCCESS"]
    assert refreshes(sandbox, engine) - before == 1
    assert account.api_calls == 1 + 3 * 4 + 6  # the six rejected calls were sent once more


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_429_fails_the_job_without_expiring_the_session(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    api = await start_api(_config(make_config, threads=8, calls_per_user=6, backfill_days=4))
    await connect(api, sandbox, "user-1", ALICE)
    sandbox.state.set_fault(ALICE, "api", Fault(status=429, retry_after=30))
    jobs = await sync_now(api, "user-1", "health")
    assert [job["status"] for job in jobs] == ["RATE_LIMITED"]
    status = await (await api.status("user-1")).json()
    assert status["status"] == "VALID"


async def test_the_first_failure_cancels_the_other_calls_and_is_raised_as_is() -> None:
    started: list[str] = []
    cancelled: list[str] = []

    async def waits(name: str) -> str:
        started.append(name)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return name

    async def fails() -> str:
        await asyncio.sleep(0)
        raise LookupError("the first failure")

    with pytest.raises(LookupError, match="the first failure"):
        await all_of([waits("a"), fails(), waits("b")])
    await asyncio.sleep(0)
    assert started == ["a", "b"]
    assert sorted(cancelled) == ["a", "b"]


async def test_all_of_keeps_the_order_of_its_calls() -> None:
    finished: list[int] = []
    done = {value: asyncio.Event() for value in (1, 2, 3)}

    async def after(previous: int | None, value: int) -> int:
        """Finishes once call `previous` has: the calls end in another order than given."""
        if previous is not None:
            await done[previous].wait()
        finished.append(value)
        done[value].set()
        return value

    assert await all_of([after(3, 1), after(None, 2), after(2, 3)]) == [1, 2, 3]
    assert finished == [2, 3, 1]
