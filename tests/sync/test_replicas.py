"""Several garmin-sync workers as real processes on one PostgreSQL database.

The sandbox and each worker run as their own processes (`python -m service sandbox|serve`);
users connect through the workers' HTTP API and the results are read straight from
PostgreSQL. These prove what in-process tests cannot: a user's jobs never overlap across
replicas, each due sync runs once per interval, a dead or stalled worker's users move on
once its lease expires (and a stalled worker's late write is refused), MFA resumes on any
replica, and SIGTERM stops a worker cleanly while a job runs.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import signal
import time
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest

from tests.support.app import ENGINES
from tests.support.replicas import (
    PG_URL,
    POLL,
    SKIP_REASON,
    Cluster,
    now,
    start,
    username_of,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(not PG_URL, reason=SKIP_REASON)

LEASE_SECONDS = 5
TICK_SECONDS = 0.2


async def running_job(cluster: Cluster, worker_id: str, *, min_age: float = 0.3,
                      kind: str | None = None) -> dict[str, Any] | None:
    """A job of `worker_id` RUNNING for at least `min_age` s (so it is inside its Garmin calls,
    not in its short database steps)."""
    cutoff = now() - timedelta(seconds=min_age)
    for job in await cluster.rows(
        "SELECT * FROM sync_job WHERE worker = $1 AND status = 'RUNNING' AND started_at < $2 "
        "ORDER BY id", worker_id, cutoff,
    ):
        if kind is None or job["kind"] == kind:
            return job
    return None


async def _final(cluster: Cluster, job_id: int) -> dict[str, Any] | None:
    job = await cluster.job(job_id)
    return job if job["status"] not in ("PENDING", "RUNNING") else None


async def test_two_workers_never_run_a_user_at_once_and_sync_each_due_user_once_per_interval(
    cluster: Cluster,
) -> None:
    users = [f"user-{n:02d}" for n in range(20)]
    intervals = {"activities": 4.5, "health": 7.5}
    run_seconds = 17.0  # 3.8 activities and 2.3 health intervals: counts away from the edges
    await start(cluster, [{"username": username_of(user), "latency_ms": 40,
                           "activities_per_day": 2} for user in users], ["w1", "w2"],
                ACTIVITIES_INTERVAL_MINUTES=str(intervals["activities"] / 60),
                HEALTH_INTERVAL_MINUTES=str(intervals["health"] / 60))

    workers = ["w1", "w2"]
    connected = await asyncio.gather(*(cluster.connect(workers[n % 2], user)
                                       for n, user in enumerate(users)))
    connected_at = dict(zip(users, connected, strict=True))

    # let both replicas schedule for a few intervals, failing fast if one dies
    end = time.monotonic() + run_seconds
    while time.monotonic() < end:
        cluster.check_alive()
        await asyncio.sleep(0.5)
    for worker_id in workers:
        cluster.workers[worker_id].send(signal.SIGTERM)
    stopped_at = now()
    codes = await asyncio.gather(*(cluster.workers[w].wait_exit(30) for w in workers))
    assert codes == [0, 0]

    jobs = await cluster.jobs()
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        by_user[job["user_id"]].append(job)
    assert set(by_user) == set(users)

    # (d) graceful stops leave nothing in flight
    assert [job for job in jobs if job["status"] in ("RUNNING", "PENDING")] == []

    # (a) a user's jobs never overlap, whichever worker and kind
    overlaps = []
    for user, user_jobs in by_user.items():
        ran = sorted((job for job in user_jobs if job["started_at"] is not None),
                     key=lambda job: job["started_at"])
        assert all(job["status"] != "SKIPPED" and job["finished_at"] is not None
                   for job in ran), ran
        for before, after in itertools.pairwise(ran):
            if before["finished_at"] > after["started_at"]:
                overlaps.append((user, before["id"], before["worker"], after["id"],
                                 after["worker"]))
    assert overlaps == []

    # (b) both replicas did work
    successes = [job for job in jobs if job["status"] == "SUCCESS"]
    assert {job["worker"] for job in successes} == {"w1", "w2"}, successes

    # (c) each due sync ran once per interval: as many successes as intervals elapsed
    # (+/-1 at the edges; a busy user's skipped turn comes back 5 s later instead of
    # queueing, so each SKIPPED may cost one), and never two within one interval
    wrong = []
    for user, user_jobs in by_user.items():
        elapsed = (stopped_at - connected_at[user]).total_seconds()
        for kind, interval in intervals.items():
            mine = [job for job in user_jobs
                    if job["kind"] == kind and job["trigger"] == "scheduled"]
            done = sorted(job["started_at"] for job in mine if job["status"] == "SUCCESS")
            skipped = sum(job["status"] == "SKIPPED" for job in mine)
            expected = math.floor(elapsed / interval) + 1
            if not expected - 1 - skipped <= len(done) <= expected + 1:
                wrong.append((user, kind, f"{len(done)} successes, {expected} intervals, "
                              f"{skipped} skipped"))
            gaps = [(after - before).total_seconds() for before, after in
                    itertools.pairwise(done)]
            if any(gap < interval / 2 for gap in gaps):
                wrong.append((user, kind, f"successes {gaps} s apart"))
    assert wrong == []

    # (e) every Garmin request carried the token of the user it was made for
    records = await cluster.sandbox_requests()
    assert all(record["caller"] in connected_at for record in records)
    with_token = [record for record in records if record["token_account"] is not None]
    assert len(with_token) >= len(successes)
    crossed = [record for record in records
               if any(record[name] not in (None, username_of(record["caller"]))
                      for name in ("account", "token_account"))]
    assert crossed == []


async def test_a_killed_worker_s_users_are_taken_over_after_the_lease_expires(
    cluster: Cluster,
) -> None:
    users = [f"user-{n}" for n in range(6)]
    # 500 ms per Garmin call: a first health job makes 7 calls, a later one 4
    await start(cluster, [{"username": username_of(user), "latency_ms": 500} for user in users],
                ["w1", "w2"], ACTIVITIES_INTERVAL_MINUTES="0.05",
                HEALTH_INTERVAL_MINUTES="0.075")
    # Users who connect together come due together, and the first worker to tick claims
    # them all; without jitter, that worker's ticks then keep reaching each next due time
    # first, so it can go on claiming every health sync for good. Which worker that is
    # depends on how their tick phases fall, so w1 might never run a health job. w2 is
    # paused while the users connect and w1 starts their first syncs, and resumes (to take
    # over) just before w1 is killed.
    cluster.workers["w2"].send(signal.SIGSTOP)
    try:
        await asyncio.gather(*(cluster.connect("w1", user) for user in users))
        victim = await eventually(lambda: running_job(cluster, "w1", kind="health"), 40,
                                  "a health job RUNNING on w1", interval=POLL,
                                  alive=cluster.check_alive)
    finally:
        cluster.workers["w2"].send(signal.SIGCONT)
    cluster.workers["w1"].send(signal.SIGKILL)
    killed_at = now()
    assert await cluster.workers["w1"].wait_exit(10) == -signal.SIGKILL
    # the leases w1 held when it died, with their final expiry (nobody renews them now)
    held_until = {lease["user_id"]: lease["expires_at"] for lease in await cluster.rows(
        "SELECT * FROM user_lease WHERE owner LIKE 'w1/%'")}

    orphans = await cluster.rows(
        "SELECT * FROM sync_job WHERE worker = 'w1' AND status = 'RUNNING' ORDER BY id")
    assert victim["id"] in [job["id"] for job in orphans]

    async def recovered() -> list[dict[str, Any]] | None:
        rows = [await cluster.job(job["id"]) for job in orphans]
        return rows if all(row["status"] != "RUNNING" for row in rows) else None

    rows = await eventually(recovered, LEASE_SECONDS + 10 * TICK_SECONDS + 3,
                            "w2 to recover the killed worker's jobs", interval=POLL,
                            alive=lambda: cluster.check_alive("w2"))
    for row in rows:
        assert row["status"] == "FAILED", row
        assert row["error"] == "worker stopped before the job finished", row
        # not before the lease w1 held at the kill ran out, and within a few ticks of it
        assert row["finished_at"] >= held_until[row["user_id"]], row
        taken = (row["finished_at"] - killed_at).total_seconds()
        assert taken <= LEASE_SECONDS + 10 * TICK_SECONDS + 3, row

    async def resynced() -> bool:
        for orphan in orphans:
            later = await cluster.rows(
                "SELECT id FROM sync_job WHERE user_id = $1 AND kind = $2 AND worker = 'w2' "
                "AND status = 'SUCCESS' AND id > $3", orphan["user_id"], orphan["kind"],
                orphan["id"])
            if not later:
                return False
        return True

    await eventually(resynced, 40, "w2 to sync the killed worker's users again",
                     interval=POLL, alive=lambda: cluster.check_alive("w2"))
    assert await cluster.stop("w2") == 0
    assert [job for job in await cluster.jobs() if job["status"] == "RUNNING"] == []


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_stalled_worker_s_late_write_is_refused(cluster: Cluster, engine: str) -> None:
    user = "user-1"
    cluster.settings["GARMIN_ENGINE"] = engine
    # a DI token is refreshed once expired, as garth's is (not a minute early)
    cluster.settings["GARMIN_DI_REFRESH_MARGIN_SECONDS"] = "0"
    # 600 ms per request keeps the jobs inside their Garmin calls; access tokens live 4 s, so
    # the stalled job refreshes its session after waking up and has a copy to write back
    # (never during the stall: it starts right after the login). The first syncs are spread
    # over years: no scheduled job, only the manual ones this test asks for.
    sync = {"INITIAL_SPREAD_SECONDS": str(10**9), "BACKFILL_DAYS": "1"}
    lifetime = {"garth": "oauth2_lifetime_seconds", "di": "di_access_lifetime_seconds"}[engine]
    await start(cluster, [{"username": username_of(user), "latency_ms": 600, lifetime: 4}],
                ["w1", "w2"], **sync)
    await cluster.connect("w1", user)
    kind = "health"
    # w1 runs the user's health job, with an activities job queued behind it
    status, body = await cluster.call("w1", "POST", "/api/v1/garmin/sync", user,
                                      {"kinds": [kind, "activities"]})
    assert status == 202, body
    queued_id = body["jobs"][1]["id"]
    stalled = await eventually(lambda: running_job(cluster, "w1", min_age=0.2), 20,
                               "w1's job RUNNING", interval=POLL)
    assert stalled["kind"] == kind
    cluster.workers["w1"].send(signal.SIGSTOP)
    held_until = (await cluster.lease(user))["expires_at"]  # w1 can no longer renew it
    before_takeover = await cluster.auth_row(user)

    async def take_over() -> Any:
        status, body = await cluster.call("w2", "POST", "/api/v1/garmin/sync", user,
                                          {"kinds": [kind]})
        if status == 409:  # w1's lease has not expired yet
            return None
        assert status == 202, body
        return body

    accepted = await eventually(take_over, LEASE_SECONDS + 10, "w2 to accept a sync of the user",
                                interval=POLL)

    takeover = await eventually(lambda: _final(cluster, accepted["jobs"][0]["id"]), 30,
                                "w2's takeover job", interval=POLL,
                                alive=lambda: cluster.check_alive("w2"))
    assert (takeover["status"], takeover["worker"]) == ("SUCCESS", "w2"), takeover
    assert takeover["started_at"] >= held_until
    assert takeover["lease_token"] > stalled["lease_token"]
    assert takeover["items_upserted"] > 0
    snapshot = await cluster.auth_row(user)
    assert snapshot["version"] > before_takeover["version"]  # w2 wrote its refreshed session

    resumed_at = now()
    cluster.workers["w1"].send(signal.SIGCONT)

    async def refused() -> dict[str, Any] | None:
        job = await cluster.job(stalled["id"])
        return job if (job["error"] or "").startswith("lease lost") else None

    late = await eventually(refused, 30, "w1's stalled job to end", interval=POLL,
                            alive=cluster.check_alive)
    assert late["status"] == "FAILED"
    assert late["error"] == "lease lost; results dropped"
    assert late["items_upserted"] == 0
    # once w1 has drained its work, nothing else of it landed: it did not go on with the
    # job queued behind the stalled one (it no longer holds the user's lease)
    assert await cluster.stop("w1") == 0
    queued = await cluster.job(queued_id)
    assert (queued["status"], queued["started_at"]) == ("FAILED", None), queued
    assert await cluster.data_rows(user, "activities") == []

    # the data and the cursor are w2's alone (written before w1 woke up)
    rows = await cluster.data_rows(user, kind)
    assert len(rows) == takeover["items_upserted"]
    assert all(takeover["started_at"] <= row["updated_at"] < resumed_at for row in rows)
    cursor = await cluster.cursor(user, kind)
    assert cursor["last_success_at"] == takeover["finished_at"]
    # once awake, w1 finished the stalled job's calls and refreshed the session (nobody else
    # talked to Garmin for this user then), so it had a copy to write back: the copy was
    # dropped, not written over w2's session
    woke = [record for record in await cluster.sandbox_requests()
            if record["caller"] == user and record["at"] >= resumed_at.timestamp()]
    assert {"garth": "exchange", "di": "di_refresh"}[engine] in [
        record["scope"] for record in woke], woke
    assert not any("activitylist" in record["path"] for record in woke), woke
    if engine == "di":
        # it woke inside the job and refreshed with the token w2 had rotated: Garmin refused
        # that reuse (invalid_grant; nothing checks the lease between waking and refreshing),
        # and it did not go on with w2's newer session, which it may not refresh unleased
        assert [(record["scope"], record["status"]) for record in woke] == [
            ("di_refresh", 400)], woke
    after = await cluster.auth_row(user)
    assert {name: after[name] for name in ("version", "session_data", "updated_at")} == {
        name: snapshot[name] for name in ("version", "session_data", "updated_at")}

    assert await cluster.stop("w2") == 0
    assert [job for job in await cluster.jobs() if job["status"] == "RUNNING"] == []


@pytest.mark.parametrize("engine", ENGINES)
async def test_mfa_code_can_go_to_another_worker_than_the_login(
    cluster: Cluster, engine: str
) -> None:
    user = "mfa-user"
    cluster.settings["GARMIN_ENGINE"] = engine
    await start(cluster, [{"username": username_of(user), "mfa_code": "246810"}], ["w1", "w2"])

    status, body = await cluster.login("w1", user)
    assert (status, body["status"]) == (200, "MFA_REQUIRED"), body
    status, body = await cluster.call("w2", "POST", "/api/v1/garmin/session/mfa", user,
                                      {"mfa_code": "246810"})
    assert (status, body) == (200, {"status": "SUCCESS"})

    for worker_id in ("w1", "w2"):
        status, body = await cluster.call(worker_id, "GET", "/api/v1/garmin/session/status",
                                          user)
        assert (status, body["status"]) == (200, "VALID"), (worker_id, body)
    # w2 finished w1's challenge: one password login, one code and one token grant at Garmin
    # (DI's code went to the app's URL only: it was accepted there)
    scopes = [record["scope"] for record in await cluster.sandbox_requests()
              if record["caller"] == user]
    grant = {"garth": "exchange", "di": "di_token"}[engine]
    assert [scopes.count(scope) for scope in ("login", "mfa", "portal_mfa", grant)] == [
        1, 1, 0, 1], scopes
    assert await asyncio.gather(cluster.stop("w1"), cluster.stop("w2")) == [0, 0]


async def test_sigterm_stops_a_worker_cleanly_mid_job(cluster: Cluster) -> None:
    user = "user-1"
    grace = 1.0
    # a first health sync makes 7 calls of 1 s: far longer than the grace period
    await start(cluster, [{"username": username_of(user), "latency_ms": 1000}], ["w1"],
                SHUTDOWN_GRACE_SECONDS=str(grace), ACTIVITIES_INTERVAL_MINUTES="1",
                HEALTH_INTERVAL_MINUTES="1")
    await cluster.connect("w1", user)
    job = await eventually(lambda: running_job(cluster, "w1", kind="health"), 30,
                           "the health job RUNNING", interval=POLL,
                           alive=cluster.check_alive)

    cluster.workers["w1"].send(signal.SIGTERM)
    started = time.monotonic()
    code = await cluster.workers["w1"].wait_exit(grace + 15)
    took = time.monotonic() - started
    assert code == 0
    assert took <= grace + 5, f"exit took {took:.1f}s with a {grace}s grace period"

    stopped = await cluster.job(job["id"])
    assert (stopped["status"], stopped["error"]) == ("FAILED", "cancelled at shutdown")
    assert [row for row in await cluster.jobs() if row["status"] in ("RUNNING", "PENDING")] == []
    lease = await cluster.lease(user)
    assert (lease["owner"], lease["expires_at"]) == (None, None)
