"""SIGTERM on a real `garmin-sync serve`: an in-flight request still gets its answer."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.support.replicas import PG_URL, POLL, Cluster, start, username_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(not PG_URL,
                                reason="needs PostgreSQL (GARMIN_SYNC_TEST_DATABASE_URL)")


async def test_a_login_in_flight_at_sigterm_is_answered_and_the_process_exits_0(
    cluster: Cluster,
) -> None:
    user = "user-1"
    # three account-bound Garmin calls of 0.4 s: the login takes ~1.2 s, inside the
    # worker's 2 s http.shutdown_timeout_seconds
    await start(cluster, [{"username": username_of(user), "latency_ms": 400}], ["w1"])
    login = asyncio.ensure_future(cluster.login("w1", user))

    async def at_garmin() -> bool:
        return bool((await cluster.sandbox_account(username_of(user)))["login_attempts"])

    await eventually(at_garmin, 10, "the login's first call to reach the sandbox", interval=POLL)
    assert not login.done()
    cluster.workers["w1"].send(signal.SIGTERM)
    status, body = await asyncio.wait_for(login, 15)
    assert (status, body) == (200, {"status": "SUCCESS"})
    assert await cluster.workers["w1"].wait_exit(20) == 0
    row = await cluster.auth_row(user)
    assert row["session_data"] is not None
