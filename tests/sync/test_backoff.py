"""How long a cursor backs off after a failure, and what a manual sync meanwhile answers:
Garmin's Retry-After sets the wait (plus at most 10 %), the exponential policy applies
without one, and the configured maximum caps both. Time moves on an injected clock."""

from __future__ import annotations

import math
from datetime import timedelta

from service.clock import ManualClock
from service.keys import RUNNER
from service.models import SyncCursor, SyncKind
from service.sandbox import Fault
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import Api, Sandbox, connect, sync_now, use_db

USER = "user-1"
ACCOUNT = "alice@example.com"
DRAWS = 200


async def _backoff_left(api: Api, clock: ManualClock) -> float:
    use_db(api)
    cursor = await SyncCursor.get(user_id=USER, kind=SyncKind.HEALTH)
    assert cursor.backoff_until is not None
    return (cursor.backoff_until - clock.now()).total_seconds()


async def _manual_sync_retry_after(api: Api) -> int:
    response = await api.client.post("/api/v1/garmin/sync", headers=api.headers(USER),
                                      json={"kinds": ["health"]})
    assert response.status == 429, await response.text()
    return int(response.headers["Retry-After"])


async def test_retry_after_sets_the_backoff_and_the_manual_sync_429_counts_it_down(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi
) -> None:
    clock = ManualClock()
    # a base above Garmin's Retry-After: the exponential policy must not lengthen its wait
    api = await start_api(make_config(sync={"backoff_base_seconds": 300,
                                            "initial_spread_seconds": 0}), clock)
    await connect(api, sandbox, USER, ACCOUNT)
    sandbox.state.set_fault(ACCOUNT, "api", Fault(status=429, retry_after=60))

    for _failure in range(3):
        [job] = await sync_now(api, USER, "health")
        assert job["status"] == "RATE_LIMITED"
        left = await _backoff_left(api, clock)
        assert 60 <= left <= 66, left
        assert await _manual_sync_retry_after(api) == math.ceil(left)
        clock.advance(30.5)
        assert await _manual_sync_retry_after(api) == math.ceil(left - 30.5)
        clock.advance(left - 30.5)  # the backoff is over: the next sync calls Garmin again

    use_db(api)
    cursor = await SyncCursor.get(user_id=USER, kind=SyncKind.HEALTH)
    assert cursor.consecutive_failures == 3


async def test_retry_after_is_the_backoff_whatever_the_failure_count(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    api = await start_api(make_config(sync={"backoff_base_seconds": 60,
                                            "backoff_max_seconds": 3600}))
    runner = api.app[RUNNER]
    for failures in (1, 2, 3, 8):
        waits = [runner.backoff(failures, 60).total_seconds() for _ in range(DRAWS)]
        assert all(60 <= wait <= 66 for wait in waits), (failures, min(waits), max(waits))


async def test_the_configured_maximum_caps_a_longer_retry_after(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    api = await start_api(make_config(sync={"backoff_max_seconds": 600}))
    runner = api.app[RUNNER]
    assert {runner.backoff(1, 7200) for _ in range(DRAWS)} == {timedelta(seconds=600)}


async def test_without_retry_after_the_backoff_grows_exponentially_up_to_the_maximum(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    api = await start_api(make_config(sync={"backoff_base_seconds": 60,
                                            "backoff_max_seconds": 1000}))
    runner = api.app[RUNNER]
    for failures, nominal in ((1, 60), (2, 120), (3, 240), (5, 960), (6, 1000), (40, 1000)):
        for retry_after in (None, 0):
            waits = [runner.backoff(failures, retry_after).total_seconds()
                     for _ in range(DRAWS)]
            assert all(nominal / 2 <= wait <= nominal for wait in waits), (failures, waits)
