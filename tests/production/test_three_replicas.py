"""Three `garmin-sync serve` replicas on one PostgreSQL database, at a production-like scale.

The sandbox and each replica run as their own processes on loopback (the harness in
`tests/support/replicas.py`); 300 users connect through the replicas' API and the replicas
sync them for several intervals while one replica is SIGKILLed. Everything is then judged
from the database's job history and the users' stored sessions: each user synced once per
interval, never on two replicas at once, the dead replica's users taken over, no session
lost or replaced by a stale copy, nothing left running after a graceful stop. A second test
finishes MFA logins on other replicas than the ones that started them.

Run with `make replicas`; the numbers measured are printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.production import (
    RUNNING_STATES,
    ProductionCluster,
    Snapshot,
    bounded,
    cpu_seconds,
    interval_findings,
    measure,
    overlapping_jobs,
    sessions_gone_backwards,
    timing,
    turns_of,
    users_per_window,
)
from tests.support.replicas import PG_URL, POLL, SKIP_REASON, now, username_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(not PG_URL, reason=SKIP_REASON)

WORKERS = ("w1", "w2", "w3")
VICTIM = "w2"
SURVIVORS = ("w1", "w3")
USERS = 300
INTERVALS = {"activities": 24.0, "health": 48.0}  # seconds (0.4 and 0.8 minutes)
SPREAD = 20.0  # a new user's first syncs start within this (part of the first interval)
LEASE_SECONDS = 5
TICK_SECONDS = 0.25
LOGINS_AT_ONCE = 20
# how late a due sync may start: a tick's period, a free job slot, the database, on a
# 2-core machine that also runs PostgreSQL, the sandbox and three replicas
LATE = 8.0
# the first syncs of 300 users who connect within ~15 s queue behind the logins themselves
FIRST_LATE = 12.0
# how much earlier than one interval after the previous one a sync may start: the previous
# job's own wait between its tick's start (the claim's time) and its start
EARLY = 5.0
KILL_AFTER = 12.0  # seconds after the last login
CALL_LATENCY_MS = 60
SYNC = {
    "TICK_SECONDS": str(TICK_SECONDS),
    "LEASE_SECONDS": str(LEASE_SECONDS),
    "INITIAL_SPREAD_SECONDS": str(SPREAD),
    "ACTIVITIES_INTERVAL_MINUTES": str(INTERVALS["activities"] / 60),
    "HEALTH_INTERVAL_MINUTES": str(INTERVALS["health"] / 60),
    "MAX_CONCURRENT_USERS": "16",
    "SHUTDOWN_GRACE_SECONDS": "10",
    "BACKFILL_DAYS": "1",
    "OVERLAP_DAYS": "1",
}
EXTRA = {"GARMIN_EXECUTOR_THREADS": "16"}


@pytest.fixture
async def cluster(replicas_schema: None, tmp_path: Path) -> AsyncIterator[ProductionCluster]:
    cluster = ProductionCluster(tmp_path, extra=EXTRA)
    await cluster.open()
    try:
        yield cluster
    finally:
        try:
            await cluster.close()
        finally:
            print(cluster.logs())  # shown by pytest only when the test failed


async def start(cluster: ProductionCluster, accounts: list[dict[str, Any]],
                **sync: str) -> None:
    cluster.start_sandbox(accounts)
    for worker_id in WORKERS:
        cluster.start_worker(worker_id, **{**SYNC, **sync})
    await asyncio.gather(cluster.ready_sandbox(),
                         *(cluster.ready_worker(worker_id) for worker_id in WORKERS))


async def claimed_cursors(cluster: ProductionCluster) -> list[dict[str, Any]]:
    """Every scheduled cursor as it stands (read right after the kill, see `lost_claims`)."""
    return await cluster.rows("SELECT user_id, kind, next_sync_at FROM sync_cursor "
                              "WHERE next_sync_at IS NOT NULL")


async def lost_claims(cluster: ProductionCluster, cursors: list[dict[str, Any]],
                      killed_at: datetime) -> list[tuple[str, str, datetime]]:
    """Turns the killed replica claimed (cursor moved on) but died before recording a job.

    A claim sets `next_sync_at` to the tick's time plus the interval (no jitter here), so
    the claim time of every cursor read right after the kill is known; a claim of the last
    seconds with no job created between it and the cursor's next turn is one whose replica
    died in between. Called once the killed replica's lease has run out (which takes longer
    than any survivor's pass), so the survivors' claims of that moment have their jobs by
    then, and bounded by the next turn, so a later turn's job cannot hide a lost claim."""
    lost = []
    for cursor in cursors:
        claimed = cursor["next_sync_at"] - timedelta(seconds=INTERVALS[cursor["kind"]])
        if not killed_at - timedelta(seconds=3) <= claimed <= killed_at:
            continue
        jobs = await cluster.rows(
            "SELECT id FROM sync_job WHERE user_id = $1 AND kind = $2 AND created_at >= $3 "
            "AND created_at < $4", cursor["user_id"], cursor["kind"], claimed,
            cursor["next_sync_at"])
        if not jobs:
            lost.append((cursor["user_id"], cursor["kind"], claimed))
    return lost


async def test_three_replicas_sync_each_user_once_per_interval_and_take_over_a_killed_one(
    cluster: ProductionCluster,
) -> None:
    began = time.monotonic()
    users = [f"user-{n:03d}" for n in range(USERS)]
    # access tokens live 40 s: every user's session is refreshed and written back mid-run.
    # 60 ms per Garmin call keeps a job running long enough (a few calls, some in parallel)
    # that the replica to kill is reliably caught with several jobs in flight (at 30 ms,
    # on a fast machine, one run saw no three at once within 30 s).
    await start(cluster, [{"username": username_of(user), "latency_ms": CALL_LATENCY_MS,
                           "oauth2_lifetime_seconds": 40} for user in users])

    # --- 300 logins, 20 at a time, spread over the three replicas -----------------------
    logins_began = time.monotonic()

    async def connect(index: int, user: str) -> tuple[str, datetime]:
        return user, await cluster.connect(WORKERS[index % len(WORKERS)], user)

    connected = dict(await bounded(LOGINS_AT_ONCE, (connect(n, user)
                                                    for n, user in enumerate(users))))
    login_seconds = time.monotonic() - logins_began
    all_connected = max(connected.values())
    samples = [await cluster.session_snapshot()]

    async def run_for(seconds: float, *alive: str) -> None:
        """Let the replicas work, failing fast if one dies; sample the sessions now and
        then (a stale write would show as a version or token going back)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            cluster.check_alive(*alive)
            samples.append(await cluster.session_snapshot())
            await asyncio.sleep(min(2.5, max(0.0, end - time.monotonic())))

    # --- a little into the run, SIGKILL one replica in the middle of its jobs -----------
    await run_for(KILL_AFTER)

    async def busy_victim() -> list[dict[str, Any]] | None:
        running = await cluster.rows(
            "SELECT id FROM sync_job WHERE worker = $1 AND status = 'RUNNING'", VICTIM)
        return running if len(running) >= 3 else None

    await eventually(busy_victim, 30, f"{VICTIM} running several jobs", interval=POLL,
                     alive=cluster.check_alive)
    cluster.workers[VICTIM].send(signal.SIGKILL)
    killed_at = now()
    assert await cluster.workers[VICTIM].wait_exit(10) == -signal.SIGKILL
    # the jobs it was running when it died
    orphans = await cluster.rows(
        "SELECT * FROM sync_job WHERE worker = $1 AND status = 'RUNNING' ORDER BY id", VICTIM)
    assert orphans, "the killed replica ran no job"
    cursors_at_kill = await claimed_cursors(cluster)

    # --- the survivors take over --------------------------------------------------------
    async def recovered() -> list[dict[str, Any]] | None:
        rows = await cluster.rows("SELECT * FROM sync_job WHERE id = ANY($1::bigint[])",
                                  [job["id"] for job in orphans])
        return rows if all(row["status"] not in RUNNING_STATES for row in rows) else None

    ended = await eventually(recovered, LEASE_SECONDS + 20, "the killed replica's jobs to end",
                             interval=POLL, alive=lambda: cluster.check_alive(*SURVIVORS))
    lost = await lost_claims(cluster, cursors_at_kill, killed_at)

    async def resynced() -> list[dict[str, Any]] | None:
        later = []
        for orphan in orphans:
            rows = await cluster.rows(
                "SELECT * FROM sync_job WHERE user_id = $1 AND kind = $2 AND status = 'SUCCESS'"
                " AND worker <> $3 AND id > $4 ORDER BY id LIMIT 1",
                orphan["user_id"], orphan["kind"], VICTIM, orphan["id"])
            if not rows:
                return None
            later.append(rows[0])
        return later

    taken_over = await eventually(resynced, max(INTERVALS.values()) + LEASE_SECONDS + 20,
                                  "the survivors to sync the killed replica's users again",
                                  interval=POLL, alive=lambda: cluster.check_alive(*SURVIVORS))
    # every user's turn of each kind comes once more on the two survivors alone
    await run_for(max(INTERVALS.values()) + LATE - (now() - killed_at).total_seconds(),
                  *SURVIVORS)

    # every user's session was refreshed by a sync job and written back by now
    samples.append(await cluster.session_snapshot())
    not_refreshed = [user for user in users if samples[-1][user].token_expires_at
                     == samples[0][user].token_expires_at]

    # --- every session still works, asked of the survivors ------------------------------
    async def status(index: int, user: str) -> tuple[str, int, Any]:
        code, body = await cluster.call(SURVIVORS[index % 2], "GET",
                                        "/api/v1/garmin/session/status?refresh=true", user)
        return user, code, body

    statuses = await bounded(LOGINS_AT_ONCE, (status(n, user) for n, user in enumerate(users)))
    not_valid = [(user, code, body) for user, code, body in statuses
                 if code != 200 or (body["status"], body["checked"]) != ("VALID", "live")]

    # --- graceful stop ------------------------------------------------------------------
    cpu = {name: cpu_seconds(proc.popen.pid) for name, proc in
           [("sandbox", cluster.sandbox), *((w, cluster.workers[w]) for w in SURVIVORS)]
           if proc is not None}
    for worker_id in SURVIVORS:
        cluster.workers[worker_id].send(signal.SIGTERM)
    stopped_at = now()
    codes = await asyncio.gather(*(cluster.workers[w].wait_exit(30) for w in SURVIVORS))
    samples.append(await cluster.session_snapshot())
    jobs = await cluster.jobs()
    records = await cluster.sandbox_requests()
    _report(jobs, users, connected, all_connected, stopped_at, killed_at, orphans, ended,
            taken_over, lost, samples, records, cpu, login_seconds, time.monotonic() - began)

    # --- the verdict ----------------------------------------------------------------------
    assert codes == [0, 0]
    assert not_valid == []
    assert [job["id"] for job in jobs if job["status"] in RUNNING_STATES] == []

    # the killed replica's jobs ended FAILED (once its lease ran out) and its users were
    # synced again by a survivor
    for row in ended:
        assert row["status"] == "FAILED", row
        assert row["error"] == "worker stopped before the job finished", row
    assert all(job["worker"] in SURVIVORS for job in taken_over)

    # no user ever ran on two replicas (or two jobs) at once
    assert overlapping_jobs(jobs, {VICTIM: killed_at}) == []

    # each user synced once per interval of each kind
    turns = turns_of(jobs, INTERVALS, lost)
    assert {user for user, _kind in turns} == set(users)
    wrong = []
    for (user, kind), entry in sorted(turns.items()):
        for finding in interval_findings(entry, INTERVALS[kind], connected=connected[user],
                                         stopped=stopped_at, spread=SPREAD,
                                         first_late=FIRST_LATE, late=LATE, early=EARLY):
            wrong.append(f"{user} {kind}: {finding}")
    assert wrong == [], "\n".join(wrong)

    # no session lost, none went back to an older copy, every one refreshed at least once
    assert sessions_gone_backwards(samples, users) == []
    assert not_refreshed == []
    assert {snapshot.status for snapshot in samples[-1].values()} == {"VALID"}

    # every Garmin request carried the token of the user it was made for
    crossed = [record for record in records
               if any(record[name] not in (None, username_of(record["caller"]))
                      for name in ("account", "token_account"))]
    assert crossed == []


def _report(jobs: list[dict[str, Any]], users: list[str], connected: dict[str, datetime],
            all_connected: datetime, stopped_at: datetime, killed_at: datetime,
            orphans: list[dict[str, Any]], ended: list[dict[str, Any]],
            taken_over: list[dict[str, Any]], lost: list[tuple[str, str, datetime]],
            samples: list[dict[str, Snapshot]], records: list[dict[str, Any]],
            cpu: dict[str, float], login_seconds: float, runtime: float) -> None:
    statuses = Counter(job["status"] for job in jobs)
    first: dict[str, list[float]] = {kind: [] for kind in INTERVALS}
    off: dict[str, list[float]] = {kind: [] for kind in INTERVALS}
    for (user, kind), entry in turns_of(jobs, INTERVALS, lost).items():
        delay, offsets = timing(entry, INTERVALS[kind], connected[user])
        first[kind] += [] if delay is None else [delay]
        off[kind] += offsets
    versions = [samples[-1][user].version - samples[0][user].version for user in users]
    measure(
        "three replicas, 300 users, one SIGKILLed",
        runtime_s=round(runtime, 1),
        logins_s=round(login_seconds, 1),
        run_after_logins_s=round((stopped_at - all_connected).total_seconds(), 1),
        jobs_total=len(jobs),
        jobs_by_status=dict(statuses),
        skipped=statuses.get("SKIPPED", 0),
        successes_by_worker=dict(Counter(job["worker"] for job in jobs
                                         if job["status"] == "SUCCESS")),
        **{f"users_per_{kind}_interval": users_per_window(
            jobs, kind, all_connected, stopped_at, interval)
           for kind, interval in INTERVALS.items()},
        **{f"{kind}_first_sync_after_login_s_max": round(max(delays), 2)
           for kind, delays in first.items() if delays},
        **{f"{kind}_gap_minus_interval_s_min_max": (round(min(values), 2),
                                                    round(max(values), 2))
           for kind, values in off.items() if values},
        orphans_running_at_kill=len(orphans),
        claims_lost_at_kill=len(lost),
        orphans_failed_after_s=round(max((row["finished_at"] - killed_at).total_seconds()
                                         for row in ended), 2),
        orphans_resynced_after_s=round(max((job["started_at"] - killed_at).total_seconds()
                                           for job in taken_over), 2),
        orphaned_users_first_job_on_survivor_after_s=round(max(min(
            (job["started_at"] - killed_at).total_seconds() for job in jobs
            if job["user_id"] == orphan["user_id"] and job["worker"] in SURVIVORS
            and job["started_at"] is not None and job["started_at"] > killed_at)
            for orphan in orphans), 2),
        session_writes_per_user_min_max=(min(versions), max(versions)),
        garmin_requests=len(records),
        cpu_s=({name: round(seconds, 1) for name, seconds in cpu.items()}),
        # their CPU time includes the logins and status checks they served
        survivor_cpu_ms_per_job=round(1000 * sum(cpu[w] for w in SURVIVORS) / sum(
            job["worker"] in SURVIVORS for job in jobs if job["started_at"] is not None)),
        first_connected_to_last_s=round((all_connected - min(connected.values()))
                                        .total_seconds(), 1),
    )


async def test_mfa_codes_finish_on_another_replica_than_the_login(
    cluster: ProductionCluster,
) -> None:
    users = [f"mfa-user-{n}" for n in range(10)]
    code = "246810"
    await start(cluster, [{"username": username_of(user), "mfa_code": code, "latency_ms": 10}
                          for user in users])

    async def login_then_mfa(index: int, user: str) -> tuple[str, Any, Any, Any]:
        login_on = WORKERS[index % 3]
        mfa_on = WORKERS[(index + 1) % 3]
        started = await cluster.login(login_on, user)
        finished = await cluster.call(mfa_on, "POST", "/api/v1/garmin/session/mfa", user,
                                      {"mfa_code": code})
        status_on = WORKERS[(index + 2) % 3]
        checked = await cluster.call(status_on, "GET", "/api/v1/garmin/session/status", user)
        return user, started, finished, checked

    results = await asyncio.gather(*(login_then_mfa(n, user) for n, user in enumerate(users)))
    for user, (login_code, login_body), finished, (status_code, status_body) in results:
        assert (login_code, login_body["status"]) == (200, "MFA_REQUIRED"), (user, login_body)
        assert finished == (200, {"status": "SUCCESS"}), (user, finished)
        assert (status_code, status_body["status"]) == (200, "VALID"), (user, status_body)
    # one password login and one code per user at Garmin: no replica started over
    scopes = Counter((record["caller"], record["scope"])
                     for record in await cluster.sandbox_requests())
    assert {user: (scopes[(user, "login")], scopes[(user, "mfa")]) for user in users} == {
        user: (1, 1) for user in users}
    codes = await asyncio.gather(*(cluster.stop(worker_id) for worker_id in WORKERS))
    assert codes == [0, 0, 0]
    assert [job["id"] for job in await cluster.jobs()
            if job["status"] in RUNNING_STATES] == []
