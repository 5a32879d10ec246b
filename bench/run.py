"""The benchmark suite: `python -m bench.run` (or `make bench`).

Every figure is a ratio of two measurements taken in the same run on the same machine
(service vs. a baseline, or measured vs. a computed floor), so a slower or busier machine
moves both sides. Results are printed as a table; each figure's raw result is written to
bench/results/ with the machine and load it ran under, and BENCHMARKS.md and its charts are
rebuilt from every result there (bench/report.py, bench/charts.py).

Figures (see BENCHMARKS.md for what each one means):
  1  status endpoint throughput (cached validation) / bare aiohttp handler, per database
  2  status p99 at a fixed rate during a 1,000-user sync / the same when idle; loop lag
  3  sync efficiency: floor (calls x 50 ms / W) / measured, users per minute, CPU per user
  4  64 concurrent logins: total time / floor, and requests carrying another user's token
  5  upsert rate: service.store.sync.upsert_activities / raw driver executemany
  6  RSS of one service process with 10,000 connected users, idle and during sync
  7  scaling: sync wall time and CPU per user at 100, 500, 1,000, 2,000 and 5,000 users

PostgreSQL figures run when GARMIN_SYNC_TEST_DATABASE_URL is set (its tables are emptied,
as the test suite does). Options: --figures 1,2,3,4,5,6,7  --users N  --tail-users N
--probe-rps R  --logins N  --scale-sizes A,B,C  --quick (smaller sizes)  --no-write
--report-only  --raw FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import contextvars
import functools
import itertools
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench import harness as h
from bench import report, webhooks
from bench.constants import APART_NICE, LATENCY_MS, PROBE_POLL, RESULTS, W
from bench.table import render
from tests.support.replicas import PASSWORD, REPO, TABLES, username_of

API_KEY = "bench-api-key-0123456789abcdef"
PG_URL = os.environ.get("GARMIN_SYNC_TEST_DATABASE_URL", "")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- shared setup ------------------------------------------------------------------------


class Env:
    """One figure's work directory, database and processes (all stopped at the end)."""

    def __init__(self, root: Path, name: str, db: str) -> None:
        self.dir = root / f"{name}-{db}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = db
        self.url = PG_URL if db == "postgres" else f"sqlite://{self.dir}/bench.sqlite3"
        from service.crypto import generate_key

        self.key = generate_key()
        self.procs: list[h.Proc] = []

    def sandbox(self, accounts: list[dict[str, Any]], cpu: int | None) -> h.Proc:
        seed = self.dir / "seed.json"
        seed.write_text(json.dumps({"accounts": [{"password": PASSWORD, **a} for a in accounts]}))
        proc = h.spawn("sandbox", ["-m", "service", "sandbox", "--seed", str(seed)],
                       h.clean_env(), self.dir, cpu)
        self.procs.append(proc)
        return proc

    def service_env(self, sandbox: h.Proc | None, **settings: str) -> dict[str, str]:
        env = h.clean_env()
        base = {
            "DATABASE_URL": self.url,
            "SECURITY_ENCRYPTION_KEYS": self.key,
            "SECURITY_DATA_DIR": str(self.dir / "data"),
            "AUTH_API_KEYS": API_KEY,
            "GARMIN_BASE_URL": sandbox.url if sandbox else "http://127.0.0.1:9",
            "GARMIN_OAUTH_CONSUMER_KEY": "sandbox-consumer-key",
            "GARMIN_OAUTH_CONSUMER_SECRET": "sandbox-consumer-secret",
            "GARMIN_RETRIES": "0",
            # the published figures measure garth's logins and read garth's sessions; the
            # sandbox needs no human pauses should a run choose the DI engine
            "GARMIN_ENGINE": "garth",
            "GARMIN_DI_LOGIN_DELAYS": "false",
            "HTTP_SHUTDOWN_TIMEOUT_SECONDS": "2",
            "SYNC_SHUTDOWN_GRACE_SECONDS": "2",
            **settings,
        }
        env.update({f"GARMIN_SYNC_{key}": value for key, value in base.items()})
        return env

    def service(self, name: str, env: dict[str, str], cpu: int | None) -> h.Proc:
        proc = h.spawn(name, ["-m", "service", "serve"], env, self.dir, cpu)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


async def empty_database(url: str) -> None:
    """Bring the schema up to date and empty every table (as the test suite does on PG).

    Migrations run in a `garmin-sync migrate` subprocess, as tests/support/replicas.py
    does: Aerich keeps per-process state, so one process cannot migrate SQLite and then
    PostgreSQL."""
    from service.crypto import generate_key

    env = h.clean_env()
    env.update({"GARMIN_SYNC_DATABASE_URL": url,
                "GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS": generate_key()})
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "service", "migrate"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed: {done.stdout}{done.stderr}")
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
        finally:
            await conn.close()


def headers(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}", "X-User-Id": user}


async def login_all(url: str, users: list[str], concurrency: int) -> list[float]:
    """Log every user in through the service API; the latency of each login."""
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def one(user: str) -> None:
            async with semaphore:
                started = time.perf_counter()
                async with http.post(url + "/api/v1/garmin/session/login", headers=headers(user),
                                     json={"username": username_of(user),
                                           "password": PASSWORD}) as response:
                    body = await response.text()
                    if response.status != 200:
                        raise RuntimeError(f"login of {user}: {response.status} {body}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one(user) for user in users))
    return latencies


async def sandbox_totals(sandbox: h.Proc) -> dict[str, int]:
    async with aiohttp.ClientSession() as http, \
            http.get(sandbox.url + "/_sandbox/accounts") as response:
        accounts = await response.json()
    return {name: sum(account[name] for account in accounts)
            for name in ("api_calls", "exchanges", "login_attempts", "refreshes")}


async def patch_accounts(sandbox: h.Proc, usernames: list[str], changes: dict[str, Any]) -> None:
    semaphore = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as http:
        async def one(username: str) -> None:
            async with semaphore, http.patch(f"{sandbox.url}/_sandbox/accounts/{username}",
                                             json=changes) as response:
                assert response.status == 200, await response.text()

        await asyncio.gather(*(one(name) for name in usernames))


# One HTTP session for every scrape of a figure's process. The probe's load generator
# shares that process's event loop: a session per scrape, and a line-by-line parse of a
# sync's metrics, took it 1.4 ms of CPU per poll (up to 4 ms) and delayed the requests it
# was about to send.
_scrapes: aiohttp.ClientSession | None = None


async def metrics_text(proc: h.Proc) -> str:
    global _scrapes
    if _scrapes is None or _scrapes.closed:
        _scrapes = aiohttp.ClientSession()
    async with _scrapes.get(proc.url + "/metrics") as response:
        return await response.text()


async def close_scrapes() -> None:
    if _scrapes is not None:
        await _scrapes.close()


@functools.lru_cache(maxsize=16)
def _samples_of(name: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", re.MULTILINE)


async def metric_sum(proc: h.Proc, name: str, **labels: str) -> float:
    """The sum of a labelled metric's samples whose labels include `labels`."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(float(value) for found, value in _samples_of(name).findall(await metrics_text(proc))
               if all(label in found for label in wanted))


LAG_METRIC = "garmin_sync_event_loop_lag_seconds"
LAG_MAX_GAUGE = "garmin_sync_event_loop_lag_max_seconds"
HTTP_METRIC = "garmin_sync_http_request_duration_seconds"
STATUS_ROUTE = "/api/v1/garmin/session/status"


async def lag_snapshot(proc: h.Proc) -> dict[str, Any]:
    """The service's event-loop lag histogram (cumulative count per bucket upper bound), its
    "largest lag of the last minute" gauge, and the status route's handling-time histogram,
    as one scrape shows them."""
    lag: dict[float, float] = {}
    handling: dict[float, float] = {}
    window_max = float("nan")
    for line in (await metrics_text(proc)).splitlines():
        if line.startswith(LAG_METRIC + "_bucket{"):
            lag[_bucket_bound(line)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(HTTP_METRIC + "_bucket{") and f'route="{STATUS_ROUTE}"' in line:
            handling[_bucket_bound(line)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(LAG_MAX_GAUGE + " "):
            window_max = float(line.rsplit(" ", 1)[1])
    if not lag:
        raise RuntimeError(f"{LAG_METRIC} is not exported by {proc.name}")
    return {"buckets": lag, "window_max": window_max, "status_handling": handling}


def _bucket_bound(line: str) -> float:
    return float(line.split('le="', 1)[1].split('"', 1)[0])


def handling_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The status route's handling time in the service (its middleware's histogram: from
    the handler's start to its answer) between two scrapes, bounded by its buckets."""
    return lag_between({"buckets": before["status_handling"]},
                       {"buckets": after["status_handling"]})


def lag_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the lag histogram saw between two scrapes, bounded by its buckets.

    The service samples lag every 0.1 s into fixed buckets (1, 2.5, 5, 10, 25, 50 ms...),
    so a percentile is only known to lie in one bucket: we report that bucket's bounds, and
    a target like "p99 <= 5 ms" is decided exactly when it sits on a bucket bound."""
    bounds = sorted(after["buckets"])
    counts = [after["buckets"][b] - before["buckets"].get(b, 0.0) for b in bounds]
    samples = counts[-1] if counts else 0.0  # the +Inf bucket holds every sample

    def bucket_of(rank: float) -> tuple[float, float]:
        for index, bound in enumerate(bounds):
            if counts[index] >= rank:
                return (bounds[index - 1] if index else 0.0), bound
        return bounds[-2], math.inf

    p99 = bucket_of(math.ceil(0.99 * samples)) if samples else (math.nan, math.nan)
    top = bucket_of(samples) if samples else (math.nan, math.nan)
    return {"samples": int(samples), "p99_bucket_ms": [b * 1000 for b in p99],
            "max_bucket_ms": [b * 1000 for b in top],
            "cumulative": {("le +Inf" if math.isinf(b) else f"le {b * 1000:g} ms"): int(c)
                       for b, c in zip(bounds, counts, strict=True)}}


# --- figure 1: status endpoint throughput ------------------------------------------------


async def figure_status(root: Path, db: str, quick: bool) -> dict[str, Any]:
    env = Env(root, "status", db)
    users = [f"status-{i}" for i in range(20)]
    try:
        await empty_database(env.url)
        sandbox = env.sandbox([{"username": username_of(u)} for u in users], h.client_cpu())
        await h.wait_ready(sandbox, "/_sandbox/requests")
        # the scheduler off: its ticks and the users' first syncs are not the figure
        service = env.service("service", env.service_env(sandbox, SYNC_ENABLED="false"),
                              h.server_cpu())
        await h.wait_ready(service, "/readyz")
        await login_all(service.url, users, 8)
        sandbox.stop()  # not needed for cached answers; frees the client core
        async with aiohttp.ClientSession() as http, \
                http.get(service.url + "/api/v1/garmin/session/status",
                         headers=headers(users[0])) as response:
            body = await response.read()
            assert response.status == 200 and b'"cached"' in body, body
        (env.dir / "body.json").write_bytes(body)
        bare = h.spawn("bare", ["-m", "bench.bare_app", "--body", str(env.dir / "body.json")],
                       h.clean_env(), env.dir, h.server_cpu())
        env.procs.append(bare)
        await h.wait_ready(bare, "/x")
        path = "/api/v1/garmin/session/status"
        service_payloads = [h.raw_get(path, service.port, headers(u)) for u in users]
        bare_payloads = [h.raw_get(path, bare.port, headers(u)) for u in users]
        targets = {"bare": (bare, bare_payloads), "service": (service, service_payloads)}
        connections, duration, rounds = 32, (2.0 if quick else 3.0), (2 if quick else 3)
        # a closed-loop estimate of the bare server sets the overload rate for every run
        estimate = await h.run_load(bare.port, bare_payloads, None, 1.5, connections, bare.pid)
        overload = estimate.achieved * 2
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "service": []}
        for _ in range(rounds):  # interleaved, so drift and neighbours hit both alike
            for name, (proc, payloads) in targets.items():
                result = await h.run_load(proc.port, payloads, overload, duration, connections,
                                          proc.pid)
                runs[name].append(result.summary())
        capacity = {name: statistics.median(r["achieved_rps"] for r in rs)
                    for name, rs in runs.items()}
        per_cpu = {name: statistics.median(r["achieved_rps"] / r["server_cpu"] for r in rs
                                           if r["server_cpu"]) for name, rs in runs.items()}
        # latency at a rate both sustain: half the service's capacity, open loop
        common = capacity["service"] * 0.5
        latency = {}
        for name, (proc, payloads) in targets.items():
            result = await h.run_load(proc.port, payloads, common, duration, connections,
                                      proc.pid)
            latency[name] = result.summary()
        return {
            "db": db, "ratio": capacity["service"] / capacity["bare"],
            "ratio_per_cpu": per_cpu["service"] / per_cpu["bare"],
            "service_rps": capacity["service"], "bare_rps": capacity["bare"],
            "service_rps_per_cpu_s": per_cpu["service"], "bare_rps_per_cpu_s": per_cpu["bare"],
            "offered_overload_rps": overload, "runs": runs, "latency_at_half": latency,
            "body_bytes": len(body), "users": len(users), "connections": connections,
        }
    finally:
        env.close()


# --- figure 3: sync efficiency -----------------------------------------------------------


async def calibrate_sandbox(root: Path, quick: bool) -> dict[str, Any]:
    """The sandbox's own maximum rate on a data endpoint (no latency), one core."""
    env = Env(root, "sandbox-cal", "none")
    try:
        sandbox = env.sandbox([{"username": "cal@example.com"}], h.server_cpu())
        await h.wait_ready(sandbox, "/_sandbox/requests")
        token = await sandbox_token(sandbox, "cal@example.com")
        day = datetime.now(UTC).date().isoformat()
        payloads = [h.raw_get(f"/connectapi/hrv-service/hrv/{day}", sandbox.port,
                              {"Authorization": f"Bearer {token}"}),
                    h.raw_get("/connectapi/usersummary-service/usersummary/daily/cal"
                              f"?calendarDate={day}", sandbox.port,
                              {"Authorization": f"Bearer {token}"})]
        estimate = await h.run_load(sandbox.port, payloads, None, 1.5, 32, sandbox.pid)
        result = await h.run_load(sandbox.port, payloads, estimate.achieved * 2,
                                  2.0 if quick else 3.0, 32, sandbox.pid)
        return {"max_rps": result.achieved, "run": result.summary(),
                "needed_rps": W / (LATENCY_MS / 1000)}
    finally:
        env.close()


async def sandbox_token(sandbox: h.Proc, username: str) -> str:
    """An access token of `username`, from a real garth login against the sandbox."""
    session = await sandbox_session(sandbox, username)
    return str(json.loads(base64.b64decode(session))[1]["access_token"])


async def sandbox_session(sandbox: h.Proc, username: str) -> str:
    from service.garmin import GarminSettings, configure_consumer
    from service.garmin.garth.signin import login

    configure_consumer("sandbox-consumer-key", "sandbox-consumer-secret")
    settings = GarminSettings(base_url=sandbox.url, timeout_seconds=10, retries=0)
    result = await asyncio.to_thread(login, settings, "bench", username, PASSWORD)
    assert result.session is not None
    return result.session


async def wait_jobs(service: h.Proc, expected: int, timeout: float,
                    poll: float = 0.25) -> float:
    """Poll the service's job counter until `expected` jobs finished (any status)."""
    deadline = time.monotonic() + timeout
    while True:
        done = await metric_sum(service, "garmin_sync_sync_jobs_total")
        if done >= expected:
            return done
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done:.0f} of {expected} jobs finished in {timeout}s")
        if not service.running():
            raise RuntimeError(f"service died:\n{service.tail()}")
        await asyncio.sleep(poll)


async def job_rows(url: str) -> list[dict[str, Any]]:
    from service import db
    from service.models import SyncJob

    ctx = await db.open_context(url)
    try:
        async def read() -> list[dict[str, Any]]:
            db.activate(ctx)
            return list(await SyncJob.all().values("user_id", "kind", "status", "started_at",
                                                   "finished_at", "created_at"))

        return await asyncio.get_running_loop().create_task(read(), context=contextvars.Context())
    finally:
        await db.close_context(ctx)


# the sync worker's CPU priority when an API process runs beside it (README: sync.nice)
# what a replica syncs at once: W in the sync figures, config.yaml's own values where a
# figure says "default concurrency"
CONCURRENCY_SETTINGS = ("SYNC_MAX_CONCURRENT_USERS", "GARMIN_EXECUTOR_THREADS")
SYNC_SETTINGS = {
    "SYNC_ENABLED": "true", "SYNC_TICK_SECONDS": "0.2", "SYNC_MAX_CONCURRENT_USERS": str(W),
    "GARMIN_EXECUTOR_THREADS": str(W), "SYNC_CLAIM_BATCH": "200",
    "SYNC_ACTIVITIES_INTERVAL_MINUTES": "600", "SYNC_HEALTH_INTERVAL_MINUTES": "600",
    "SYNC_INITIAL_SPREAD_SECONDS": "0", "SYNC_JITTER_FRACTION": "0", "SYNC_BACKFILL_DAYS": "2",
    "SYNC_OVERLAP_DAYS": "1", "SYNC_LEASE_SECONDS": "60", "GARMIN_TIMEOUT_SECONDS": "20",
}


async def login_phase(env: Env, sandbox: h.Proc, users: list[str]) -> dict[str, Any]:
    """Log `users` in through a service with the sync settings but no scheduler (so no sync
    starts while others still log in); the login figures of that run."""
    login_env = env.service_env(sandbox, LOGGING_LEVEL="WARNING",
                                **{**SYNC_SETTINGS, "SYNC_ENABLED": "false"})
    service = env.service("login", login_env, h.server_cpu())
    await h.wait_ready(service, "/readyz")
    cpu0, started = h.cpu_seconds(service.pid), time.perf_counter()
    latencies = sorted(await login_all(service.url, users, W))
    wall, cpu = time.perf_counter() - started, h.cpu_seconds(service.pid) - cpu0
    service.stop()
    return {"users": len(users), "concurrency": W, "wall_s": wall,
            "logins_per_s": len(users) / wall, "cpu_s_per_login": cpu / len(users),
            "p50_ms": h.ranked(latencies, 0.5) * 1000, "p99_ms": h.ranked(latencies, 0.99) * 1000}


async def sync_phase(env: Env, sandbox: h.Proc, n_users: int,
                     probe: StatusProbe | None = None, api_apart: bool = False,
                     default_concurrency: bool = False) -> dict[str, Any]:
    """Start a service with the scheduler on and let it sync every connected user once
    (2 jobs each); what it cost, from the job rows, the sandbox counters and /proc.

    Without a probe the users' cursors are due already, so the sync starts with the first
    tick. With one, see `idle_then_due`; the probe then runs again for the whole sync.
    With `api_apart` the probe asks a second `serve` process with the scheduler off, on the
    same core as the syncing one (an API replica beside a sync worker). With
    `default_concurrency` the service keeps its own sync.max_concurrent_users and
    garmin.executor_threads (config.yaml) instead of W."""
    before = await sandbox_totals(sandbox)
    if probe is not None:
        await set_cursors_due(env.url, datetime.now(UTC) + timedelta(days=1))
    worker_settings = {**SYNC_SETTINGS, **({"SYNC_NICE": str(APART_NICE)} if api_apart else {})}
    if default_concurrency:
        for name in CONCURRENCY_SETTINGS:
            del worker_settings[name]
    service = env.service("sync", env.service_env(sandbox, LOGGING_LEVEL="WARNING",
                                                  **worker_settings), h.server_cpu())
    await h.wait_ready(service, "/readyz" if probe else "/healthz")
    probed_service = service
    if api_apart:
        api_env = env.service_env(sandbox, LOGGING_LEVEL="WARNING",
                                  **{**SYNC_SETTINGS, "SYNC_ENABLED": "false"})
        probed_service = env.service("api", api_env, h.server_cpu())
        await h.wait_ready(probed_service, "/readyz")
    idle = (await idle_then_due(env, probed_service, probe) if probe is not None else None)
    cpu0, sandbox_cpu0 = h.cpu_seconds(service.pid), h.cpu_seconds(sandbox.pid)
    stop = asyncio.Event()
    during = None
    if probe is not None:  # no warm-up: the service is warm, the sync's first tick counts
        during = asyncio.ensure_future(probe.measure(probed_service, 3600, until=stop,
                                                     warmup=0))
    try:
        await wait_jobs(service, 2 * n_users, timeout=60 + n_users * 0.5,
                        poll=PROBE_POLL if probe else 0.25)
    finally:
        stop.set()
    probed = await during if during is not None else None
    cpu = h.cpu_seconds(service.pid) - cpu0
    sandbox_cpu = h.cpu_seconds(sandbox.pid) - sandbox_cpu0
    after = await sandbox_totals(sandbox)
    service.stop()
    calls = sum(after[k] - before[k] for k in ("api_calls", "exchanges"))
    rows = await job_rows(env.url)
    result = sync_summary(env.db, rows, n_users, calls, cpu, sandbox_cpu)
    if default_concurrency:  # W's floor does not apply
        result.pop("efficiency")
        result["concurrency"] = sync_concurrency(env.service_env(sandbox, **worker_settings))
    if idle is not None:
        if result["first_job_started"] < idle["ended_at"]:
            raise RuntimeError("the sync started before the idle probe run ended")
        result["probe"] = {"idle": idle, "sync": probed}
    return result


async def idle_then_due(env: Env, service: h.Proc, probe: StatusProbe) -> dict[str, Any]:
    """The probe's idle run on a service whose scheduler ticks over nothing due, then every
    cursor due a moment later, so the sync starts by itself.

    The due time is written before the idle run: the load generator's process does no
    database work while it measures (opening Tortoise there would stall it)."""
    due = datetime.now(UTC) + timedelta(seconds=probe.idle_seconds + 5)
    await set_cursors_due(env.url, due)
    idle = await probe.measure(service, probe.idle_seconds, scrape_every=PROBE_POLL)
    idle["ended_at"] = datetime.now(UTC)
    await asyncio.sleep(max(0.0, (due - idle["ended_at"]).total_seconds() - 0.2))
    return idle


def sync_summary(db: str, rows: list[dict[str, Any]], n_users: int, calls: int, cpu: float,
                 sandbox_cpu: float) -> dict[str, Any]:
    """A sync's figures: wall time from its job rows against the floor its calls set."""
    statuses: dict[str, int] = {}
    for row in rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    first = min(row["started_at"] for row in rows if row["started_at"])
    last = max(row["finished_at"] for row in rows if row["finished_at"])
    measured = (last - first).total_seconds()
    floor = calls * LATENCY_MS / 1000 / W
    return {
        "db": db, "users": n_users, "jobs": statuses, "calls": calls,
        "calls_per_user": calls / n_users, "floor_s": floor, "measured_s": measured,
        "first_job_started": first,
        "efficiency": floor / measured, "users_per_minute": n_users / measured * 60,
        "wall_s_per_user": measured / n_users,
        "cpu_s_per_user": cpu / n_users, "cpu_s_total": cpu,
        "service_cpu_share": cpu / measured, "sandbox_cpu_s": sandbox_cpu,
        "sandbox_cpu_share": sandbox_cpu / measured,
        # the best efficiency possible if the busier process had a whole core to itself
        "cpu_bound_ceiling": floor / max(cpu, sandbox_cpu),
    }


async def figure_sync(root: Path, db: str, n_users: int) -> dict[str, Any]:
    env = Env(root, "sync", db)
    users = [f"sync-{i}" for i in range(n_users)]
    names = [username_of(u) for u in users]
    try:
        await empty_database(env.url)
        sandbox = env.sandbox([{"username": n, "history_days": 7} for n in names],
                              h.client_cpu())
        await h.wait_ready(sandbox, "/_sandbox/requests")
        login = await login_phase(env, sandbox, users)
        await patch_accounts(sandbox, names, {"latency_ms": LATENCY_MS})
        return {**await sync_phase(env, sandbox, n_users), "login": login}
    finally:
        env.close()


# --- figure 2: status tail latency under sync load ---------------------------------------


class StatusProbe:
    """A fixed-rate, open-loop stream of status requests (round-robin over `users`), with a
    slower one of `/healthz` beside it and the service's lag histogram around both.

    `/healthz` does no I/O, so its latency is time spent waiting for the event loop: an
    outside view of loop lag, with the load generator's and the network's share in it."""

    connections = 32
    health_rps = 20.0

    def __init__(self, users: list[str], rate: float, idle_seconds: float) -> None:
        self.users = users
        self.rate = rate
        self.idle_seconds = idle_seconds

    async def measure(self, service: h.Proc, seconds: float, *,
                      until: asyncio.Event | None = None, warmup: float = 0.5,
                      scrape_every: float | None = None) -> dict[str, Any]:
        """One run of both streams; `scrape_every` adds a /metrics scrape at that period,
        the same monitoring load a sync phase's job polling puts on the service."""
        path = "/api/v1/garmin/session/status"
        status = [h.raw_get(path, service.port, headers(u)) for u in self.users]
        health = [h.raw_get("/healthz", service.port)]
        lag0 = await lag_snapshot(service)
        # where the p99 timeline's zero lies, so a chart can place the sync's jobs on it
        window_started_at = datetime.now(UTC) + timedelta(seconds=warmup)
        done = asyncio.Event()
        scraper = (asyncio.ensure_future(scrape_until(service, scrape_every, done))
                   if scrape_every else None)
        try:
            with h.warm_core(h.client_cpu()):
                main, side = await asyncio.gather(
                    h.run_load(service.port, status, self.rate, seconds, self.connections,
                               service.pid, warmup=warmup, until=until),
                    h.run_load(service.port, health, self.health_rps, seconds, 4,
                               warmup=warmup, until=until))
        finally:
            done.set()
            if scraper is not None:
                await scraper
        lag1 = await lag_snapshot(service)
        return {"status": main.summary(), "healthz": side.summary(),
                "lag": lag_between(lag0, lag1), "lag_window_max_ms": lag1["window_max"] * 1000,
                "status_handling": handling_between(lag0, lag1),
                "p999_ms": main.percentile(0.999) * 1000,
                "window_started_at": window_started_at, "window_s": main.duration}


async def scrape_until(service: h.Proc, period: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await metrics_text(service)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)


async def figure_tail(root: Path, db: str, n_users: int, rate: float,
                      quick: bool, api_apart: bool = False,
                      default_concurrency: bool = False) -> dict[str, Any]:
    """Figure 2: does a sync hurt the API's tail? The same process, the same probe, idle
    and then while it syncs `n_users` (figure 3's setup), so only the sync differs.
    `api_apart`: the probe asks an API process beside the syncing one, on the same core.
    `default_concurrency`: the replica syncs at its configured concurrency, not W."""
    env = Env(root, "tail" + ("-apart" if api_apart else "")
              + ("-default" if default_concurrency else ""), db)
    users = [f"tail-{i}" for i in range(n_users)]
    names = [username_of(u) for u in users]
    try:
        await empty_database(env.url)
        sandbox = env.sandbox([{"username": n, "history_days": 7} for n in names],
                              h.client_cpu())
        await h.wait_ready(sandbox, "/_sandbox/requests")
        login = await login_phase(env, sandbox, users)
        await patch_accounts(sandbox, names, {"latency_ms": LATENCY_MS})
        probe = StatusProbe(users, rate, 5.0 if quick else 10.0)
        sync = await sync_phase(env, sandbox, n_users, probe, api_apart, default_concurrency)
        idle, during = sync["probe"]["idle"], sync["probe"]["sync"]
        return {"db": db, "users": n_users, "rate": rate, "api_apart": api_apart,
                "concurrency": sync.get("concurrency", {"users": W, "threads": W}),
                "default_concurrency": default_concurrency,
                "idle_p99_ms": idle["status"]["p99_ms"], "sync_p99_ms": during["status"]["p99_ms"],
                "ratio": during["status"]["p99_ms"] / idle["status"]["p99_ms"],
                "lag": during["lag"], "lag_idle": idle["lag"],
                "sync": {k: v for k, v in sync.items() if k != "probe"},
                "probe": sync["probe"], "login": login}
    finally:
        env.close()


# --- figure 4: login isolation and cost --------------------------------------------------


def executor_threads(env: dict[str, str]) -> int:
    """garmin.executor_threads as the service started with `env` resolves it: the number
    of logins it can run at once."""
    return sync_concurrency(env)["threads"]


def sync_concurrency(env: dict[str, str]) -> dict[str, int]:
    """The users a replica started with `env` syncs at once, and its Garmin threads, as it
    resolves them (the config file, then the environment)."""
    from service.config import load_config, resolve_config_path

    config = load_config(resolve_config_path(None, env), env)
    return {"users": config.sync.max_concurrent_users, "threads": config.garmin.executor_threads}


async def sandbox_requests(sandbox: h.Proc) -> list[dict[str, Any]]:
    """The sandbox's request record: per request the caller the service named in
    X-Sandbox-Caller, the account it resolved to and the owner of the token it carried."""
    async with aiohttp.ClientSession() as http, \
            http.get(sandbox.url + "/_sandbox/requests") as response:
        records: list[dict[str, Any]] = await response.json()
    return records


def crossed_requests(records: list[dict[str, Any]]) -> dict[str, int]:
    """Requests about, or carrying a credential of, an account other than the caller's own
    (as the replica tests check it); requests without a caller cannot be checked."""
    checked = [r for r in records if r["caller"] is not None]
    crossed = [r for r in checked
               if any(r[name] is not None
                      and r[name].casefold() != username_of(r["caller"]).casefold()
                      for name in ("account", "token_account"))]
    return {"checked": len(checked), "crossed": len(crossed),
            "without_caller": len(records) - len(checked),
            "with_token": sum(1 for r in checked if r["token_account"] is not None)}


def login_calls(records: list[dict[str, Any]], users: list[str]) -> dict[str, Any]:
    """What one login costs in sandbox requests, and the latency the sandbox added to them
    (its record says, per request: the sign-in and embed pages, which carry no username,
    get the sandbox-wide latency, the others their account's)."""
    mine = set(users)
    per_user = {u: 0 for u in users}
    delayed = {u: 0 for u in users}
    delay_ms = {u: 0 for u in users}
    scopes: dict[str, int] = {}
    for record in records:
        if record["caller"] in mine:
            per_user[record["caller"]] += 1
            delayed[record["caller"]] += record["delay_ms"] > 0
            delay_ms[record["caller"]] += record["delay_ms"]
            scopes[record["scope"]] = scopes.get(record["scope"], 0) + 1
    return {"calls_per_login": statistics.median(per_user.values()),
            "delayed_calls_per_login": statistics.median(delayed.values()),
            "delay_ms_per_login": statistics.median(delay_ms.values()),
            "calls_by_scope": scopes}


async def set_sandbox_latency(sandbox: h.Proc, latency_ms: int) -> None:
    """The latency of the sandbox's requests that no account is known for (sign-in page,
    embed page)."""
    async with aiohttp.ClientSession() as http, \
            http.patch(sandbox.url + "/_sandbox/settings",
                       json={"latency_ms": latency_ms}) as response:
        assert response.status == 200, await response.text()


async def figure_login(root: Path, db: str, logins: int, rate: float,
                       quick: bool) -> dict[str, Any]:
    """Figure 4: a burst of logins against the floor the sandbox latency and the thread
    pool set, under the status probe, and whether any request carried another user's
    credentials (the sandbox's record of every request says)."""
    env = Env(root, "login", db)
    probe_users = [f"probe-{i}" for i in range(20)]
    users = [f"login-{i}" for i in range(logins)]
    try:
        await empty_database(env.url)
        sandbox = env.sandbox([{"username": username_of(u)} for u in probe_users + users],
                              h.client_cpu())
        await h.wait_ready(sandbox, "/_sandbox/requests")
        # no scheduler: the figure is the logins, not the first syncs they make due
        service_env = env.service_env(sandbox, LOGGING_LEVEL="WARNING", SYNC_ENABLED="false")
        threads = executor_threads(service_env)
        service = env.service("service", service_env, h.server_cpu())
        await h.wait_ready(service, "/readyz")
        await login_all(service.url, probe_users, 8)  # the probe's users, sandbox latency 0
        await patch_accounts(sandbox, [username_of(u) for u in users],
                             {"latency_ms": LATENCY_MS})
        await set_sandbox_latency(sandbox, LATENCY_MS)  # every login call, pages included
        probe = StatusProbe(probe_users, rate, 3.0 if quick else 5.0)
        idle = await probe.measure(service, probe.idle_seconds)
        run = await logins_under_probe(service, users, probe)
        records = await sandbox_requests(sandbox)
        calls = login_calls(records, users)
        rounds = math.ceil(logins / threads)
        floor = rounds * calls["delay_ms_per_login"] / 1000
        probe_cpu = (idle["status"]["server_cpu"] or 0.0) * run["total_s"]
        return {
            "db": db, "logins": logins, "executor_threads": threads, **run,
            "floor_s": floor, "ratio": run["total_s"] / floor,
            **calls, "isolation": crossed_requests(records),
            # minus what the status probe cost when idle (its CPU share times this span)
            "cpu_s_per_login": max(0.0, run["service_cpu_s"] - probe_cpu) / logins,
            "status_idle_p99_ms": idle["status"]["p99_ms"],
            "status_p99_ms": run["probe"]["status"]["p99_ms"],
            "probe_idle": idle,
        }
    finally:
        env.close()


async def logins_under_probe(service: h.Proc, users: list[str],
                             probe: StatusProbe) -> dict[str, Any]:
    """All `users` log in at once while the probe runs; the span from the first request
    to the last answer, the service's CPU over it, the login latencies and the probe."""
    stop = asyncio.Event()
    during = asyncio.ensure_future(probe.measure(service, 600, until=stop, warmup=0))
    await asyncio.sleep(0.2)  # the probe's connections are open and its stream runs
    cpu0, started = h.cpu_seconds(service.pid), time.perf_counter()
    try:
        latencies = sorted(await login_all(service.url, users, len(users)))
    finally:
        total = time.perf_counter() - started
        cpu = h.cpu_seconds(service.pid) - cpu0
        stop.set()
    return {"total_s": total, "service_cpu_s": cpu, "p50_ms": h.ranked(latencies, 0.5) * 1000,
            "p99_ms": h.ranked(latencies, 0.99) * 1000, "probe": await during}


# --- figure 7: scaling curve -------------------------------------------------------------

SCALE_ACCOUNT = "scale@example.com"


async def scale_point(root: Path, db: str, n_users: int) -> dict[str, Any]:
    """One sync of `n_users` seeded users (figure 3's settings), in a fresh database.

    The users are inserted directly, each with the session of one real sandbox login
    sealed for them: logging 5,000 users in through the API would take longer than their
    sync. The sandbox therefore attributes every request to that one account; it keeps no
    per-account cache or lock, so each request costs it the same as with one account per
    user, and the figure measures the service."""
    env = Env(root, f"scale-{n_users}", db)
    try:
        await empty_database(env.url)
        sandbox = env.sandbox([{"username": SCALE_ACCOUNT, "history_days": 7,
                                "latency_ms": LATENCY_MS}], h.client_cpu())
        await h.wait_ready(sandbox, "/_sandbox/requests")
        session = await sandbox_session(sandbox, SCALE_ACCOUNT)
        await seed_users(env.url, env.key, session, n_users,
                         datetime.now(UTC) - timedelta(seconds=1), prefix="scale")
        result = await sync_phase(env, sandbox, n_users)
        async with aiohttp.ClientSession() as http, \
                http.get(sandbox.url + "/_sandbox/accounts") as response:
            accounts = await response.json()
        result["sandbox_accounts_called"] = sum(1 for a in accounts if a["api_calls"])
        return result
    finally:
        env.close()


async def figure_scale(root: Path, db: str, sizes: list[int]) -> dict[str, Any]:
    """Figure 7: per-user sync cost at growing user counts; it should stay flat (nothing in
    a tick or a job should grow with the number of users)."""
    points = []
    for n_users in sizes:
        log(f"  scale ({db}): {n_users} users")
        points.append(await scale_point(root, db, n_users))
    wall = [p["wall_s_per_user"] for p in points]
    cpu = [p["cpu_s_per_user"] for p in points]
    # wall time each added user cost between consecutive sizes: a sync's fixed ramp and
    # tail (first tick, the last users' sequential calls) cancel out of these
    marginal = [{"from": a["users"], "to": b["users"],
                 "ms_per_user": (b["measured_s"] - a["measured_s"]) / (b["users"] - a["users"])
                 * 1000} for a, b in itertools.pairwise(points)]
    return {"db": db, "sizes": sizes, "points": points, "marginal": marginal,
            "ratio": max(wall) / min(wall), "cpu_ratio": max(cpu) / min(cpu)}


# --- figure 5: upsert rate ---------------------------------------------------------------


def activity_rows(count: int) -> list[dict[str, Any]]:
    """`count` parsed activities as a sync would upsert them (sandbox-generated JSON)."""
    from service.sandbox import Account, expected_activities
    from service.sync.parsing import activity_fields

    per_day = 20
    account = Account.from_dict({"username": "upsert@example.com", "password": PASSWORD,
                                 "activities_per_day": per_day,
                                 "history_days": count // per_day + 1})
    raw = expected_activities(account, datetime.now(UTC).date())
    return [activity_fields(item) for item in raw[:count]]


async def figure_upsert(root: Path, db: str, quick: bool) -> dict[str, Any]:
    from service import db as service_db
    from service.models import Activity
    from service.store import sync as store

    env = Env(root, "upsert", db)
    rows = activity_rows(10_000)
    assert len(rows) == 10_000
    present = rows[::2]
    user = "upsert-user"
    await empty_database(env.url)
    ctx = await service_db.open_context(env.url)
    columns = ["user_id", "garmin_activity_id", *[c for c in store.ACTIVITY_UPDATE
                                                   if c != "updated_at"], "first_seen",
               "updated_at"]
    is_pg = env.url.startswith("postgres")
    if is_pg:
        marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    else:
        marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in store.ACTIVITY_UPDATE)
    names = ", ".join(f'"{c}"' for c in columns)
    sql = (f'INSERT INTO "activity" ({names})'
           f" VALUES ({marks}) ON CONFLICT (\"user_id\", \"garmin_activity_id\")"
           f" DO UPDATE SET {updates}")

    def tuples(batch: list[dict[str, Any]], now: datetime) -> list[tuple[Any, ...]]:
        out = []
        for row in batch:
            values = []
            for column in columns:
                if column == "user_id":
                    value: Any = user
                elif column in ("first_seen", "updated_at"):
                    value = now
                else:
                    value = row[column]
                if column == "raw_json":
                    value = json.dumps(value)
                elif isinstance(value, datetime) and not is_pg:
                    value = value.isoformat(" ")
                values.append(value)
            out.append(tuple(values))
        return out

    async def reset() -> None:
        await Activity.filter(user_id=user).delete()
        conn = Activity._meta.db
        await raw_upsert(conn, present)

    async def raw_upsert(conn: Any, batch: list[dict[str, Any]]) -> None:
        data = tuples(batch, datetime.now(UTC))
        if is_pg:
            async with conn.acquire_connection() as raw, raw.transaction():
                await raw.executemany(sql, data)
        else:
            async with conn.acquire_connection() as raw:
                await raw.execute("BEGIN")
                await raw.executemany(sql, data)
                await raw.execute("COMMIT")

    async def service_upsert() -> None:
        from tortoise.transactions import in_transaction

        async with in_transaction("default") as connection:
            await store.upsert_activities(user, rows, datetime.now(UTC), connection)

    async def work() -> dict[str, Any]:
        service_db.activate(ctx)
        conn = Activity._meta.db
        timings: dict[str, list[float]] = {"service": [], "raw": []}
        cpu: dict[str, list[float]] = {"service": [], "raw": []}
        for _ in range(3 if quick else 5):
            for name in ("service", "raw"):
                await reset()
                started, cpu0 = time.perf_counter(), time.process_time()
                if name == "service":
                    await service_upsert()
                else:
                    await raw_upsert(conn, rows)
                timings[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - cpu0)
                count = await Activity.filter(user_id=user).count()
                assert count == 10_000, count
        service_s, raw_s = statistics.median(timings["service"]), statistics.median(timings["raw"])
        return {"db": db, "rows": 10_000, "already_present": len(present),
                "service_rows_per_s": 10_000 / service_s, "raw_rows_per_s": 10_000 / raw_s,
                "ratio": raw_s / service_s, "timings_s": timings,
                # this process's CPU (all threads; on SQLite that includes the database
                # engine, on PostgreSQL only the client side)
                "ratio_cpu": statistics.median(cpu["raw"]) / statistics.median(cpu["service"]),
                "cpu_s": cpu, "changes": await webhooks.upsert_changes(user, rows, reset, 3)}

    try:
        return await asyncio.get_running_loop().create_task(work(), context=contextvars.Context())
    finally:
        await service_db.close_context(ctx)


# --- figure 6: memory --------------------------------------------------------------------


async def seed_users(url: str, key: str, session: str, count: int, due: datetime,
                     prefix: str = "mem") -> None:
    """`count` connected users `<prefix>-00000`...: an auth row with the session sealed for
    each user (the service's own Cipher) and both cursors due at `due`."""
    from service import db as service_db
    from service.crypto import Cipher
    from service.models import GarminAuthenticationState, SessionStatus, SyncCursor, SyncKind
    from service.store.vault import SESSION

    cipher = Cipher([key])
    ctx = await service_db.open_context(url)

    async def work() -> None:
        service_db.activate(ctx)
        now = datetime.now(UTC)
        users = [f"{prefix}-{i:05d}" for i in range(count)]
        await GarminAuthenticationState.bulk_create([
            GarminAuthenticationState(
                user_id=u, session_data=cipher.encrypt(session, user_id=u, purpose=SESSION),
                status=SessionStatus.VALID, connected_at=now, last_validated=now, version=1)
            for u in users], batch_size=1000)
        await SyncCursor.bulk_create([SyncCursor(user_id=u, kind=kind, next_sync_at=due)
                                      for u in users for kind in SyncKind], batch_size=1000)

    try:
        await asyncio.get_running_loop().create_task(work(), context=contextvars.Context())
    finally:
        await service_db.close_context(ctx)


async def set_all_due(url: str) -> None:
    await set_cursors_due(url, datetime.now(UTC) - timedelta(seconds=1))


async def set_cursors_due(url: str, at: datetime) -> None:
    """Every sync cursor due at `at` (from another process: the scheduler reads the
    cursors from the database on each tick)."""
    from service import db as service_db
    from service.models import SyncCursor

    ctx = await service_db.open_context(url)

    async def work() -> None:
        service_db.activate(ctx)
        await SyncCursor.all().update(next_sync_at=at)

    try:
        await asyncio.get_running_loop().create_task(work(), context=contextvars.Context())
    finally:
        await service_db.close_context(ctx)


async def sample_rss(pid: int, seconds: float) -> dict[str, int]:
    peak = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, h.memory(pid)["VmRSS"])
        await asyncio.sleep(0.1)
    mem = h.memory(pid)
    return {"max_sampled_rss": peak, "VmHWM": mem["VmHWM"], "VmRSS_end": mem["VmRSS"]}


async def status_sweep(service: h.Proc, users: list[str]) -> None:
    semaphore = asyncio.Semaphore(32)
    async with aiohttp.ClientSession() as http:
        async def one(user: str) -> None:
            async with semaphore, http.get(service.url + "/api/v1/garmin/session/status",
                                           headers=headers(user)) as response:
                assert response.status == 200, await response.text()

        await asyncio.gather(*(one(u) for u in users))


async def figure_memory(root: Path, db: str, count: int, sync_seconds: float) -> dict[str, Any]:
    env = Env(root, "memory", db)
    try:
        await empty_database(env.url)
        sandbox = env.sandbox([{"username": "mem@example.com", "latency_ms": LATENCY_MS,
                                "history_days": 7}], h.client_cpu())
        await h.wait_ready(sandbox, "/_sandbox/requests")
        settings = {**SYNC_SETTINGS, "LOGGING_LEVEL": "WARNING"}
        # baseline: the same service with no user at all
        service = env.service("empty", env.service_env(sandbox, **settings), h.server_cpu())
        await h.wait_ready(service, "/readyz")
        await asyncio.sleep(2)
        empty_rss = h.memory(service.pid)["VmRSS"]
        service.stop()
        session = await sandbox_session(sandbox, "mem@example.com")
        await seed_users(env.url, env.key, session, count,
                         datetime.now(UTC) + timedelta(days=1))
        service = env.service("idle", env.service_env(sandbox, **settings), h.server_cpu())
        await h.wait_ready(service, "/readyz")
        await asyncio.sleep(3)  # some scheduler ticks over 10,000 not-due users
        idle_rss = h.memory(service.pid)["VmRSS"]
        users = [f"mem-{i:05d}" for i in range(count)]
        await status_sweep(service, users)
        after_status = h.memory(service.pid)
        service.stop()
        await set_all_due(env.url)
        service = env.service("syncing", env.service_env(sandbox, **settings), h.server_cpu())
        await h.wait_ready(service, "/healthz")
        sampled = await sample_rss(service.pid, sync_seconds)
        jobs = await metric_sum(service, "garmin_sync_sync_jobs_total")
        success = await metric_sum(service, "garmin_sync_sync_jobs_total", status="SUCCESS")
        service.stop()
        return {"db": db, "users": count, "empty_rss": empty_rss, "idle_rss": idle_rss,
                "after_status_sweep_rss": after_status["VmRSS"],
                "after_status_sweep_hwm": after_status["VmHWM"],
                "sync": {**sampled, "seconds": sync_seconds, "jobs_finished": jobs,
                         "jobs_success": success},
                "peak": max(idle_rss, after_status["VmHWM"], sampled["VmHWM"])}
    finally:
        env.close()


CHILD_RESULT = "BENCH-RESULT "


async def run_child(args: argparse.Namespace) -> int:
    """One figure on one database in this (fresh) process; the result as the last line.

    Each figure runs in its own process: Tortoise and Aerich keep per-process state, so one
    process cannot use SQLite and then PostgreSQL, and no figure inherits another's heap.
    """
    h.pin_self(h.client_cpu())
    key, db = args.child.split(":")
    root = Path(args.root)
    work: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "status": lambda: figure_status(root, db, args.quick),
        "tail": lambda: figure_tail(root, db, args.tail_users, args.probe_rps, args.quick),
        "tail-default": lambda: figure_tail(root, db, args.tail_users, args.probe_rps,
                                            args.quick, default_concurrency=True),
        "tail-apart": lambda: figure_tail(root, db, args.tail_users, args.probe_rps,
                                          args.quick, api_apart=True),
        "sandbox": lambda: calibrate_sandbox(root, args.quick),
        "sync": lambda: figure_sync(root, db, args.users),
        "login": lambda: figure_login(root, db, args.logins, args.probe_rps, args.quick),
        "scale": lambda: figure_scale(root, db, sizes(args.scale_sizes)),
        "upsert": lambda: figure_upsert(root, db, args.quick),
        "memory": lambda: figure_memory(root, db, args.memory_users,
                                        10 if args.quick else 20),
        "webhooks": lambda: webhooks.figure_webhooks(root, db, args.users, args.quick),
    }
    try:
        outcome = await work[key]()
    finally:
        await close_scrapes()
    print(CHILD_RESULT + json.dumps(outcome, default=str), flush=True)
    return 0


async def guarded(results: dict[str, Any], key: str, db: str, args: argparse.Namespace,
                  root: Path, machine: dict[str, Any]) -> None:
    log(f"{key} ({db}) ...")
    started, load_before = time.perf_counter(), load_average()
    busy0, own0 = h.busy_cpu_seconds(), h.children_cpu_seconds()
    command = [sys.executable, "-m", "bench.run", "--child", f"{key}:{db}",
               "--root", str(root), "--users", str(args.users),
               "--memory-users", str(args.memory_users), "--tail-users", str(args.tail_users),
               "--probe-rps", str(args.probe_rps), "--logins", str(args.logins),
               "--scale-sizes", args.scale_sizes, *(["--quick"] if args.quick else [])]
    done = await asyncio.to_thread(subprocess.run, command, cwd=REPO, capture_output=True,
                                   text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(CHILD_RESULT)]
    if lines:
        outcome = json.loads(lines[-1].removeprefix(CHILD_RESULT))
    else:
        errors = [line for line in done.stderr.splitlines() if line and not line[0].isspace()]
        print(done.stderr[-3000:], file=sys.stderr)
        outcome = {"db": db, "error": (errors[-1] if errors else f"exit {done.returncode}")[:200]}
    elapsed = time.perf_counter() - started
    # the machine's busy CPU that was not this figure's processes: other work on a shared
    # machine (and PostgreSQL's own processes, which are not our children)
    other = max(0.0, (h.busy_cpu_seconds() - busy0) - (h.children_cpu_seconds() - own0))
    other_share = round(other / (elapsed * len(h.cpus())), 2)
    log(f"{key} ({db}) done in {elapsed:.0f} s; other work {other_share:.0%} of the machine")
    if key == "sandbox":
        results[key] = outcome
    else:
        results.setdefault(key, []).append(outcome)
    if not args.no_write:
        run = {"options": _options(sys.argv[1:]), "duration_s": round(elapsed, 1),
               "load_before": load_before, "load_after": load_average(),
               "other_cpu_share": other_share}
        report.save(key, db, outcome, machine, run)


def load_average() -> str:
    """The 1-minute load average: the machine's other work while a figure ran."""
    return Path("/proc/loadavg").read_text().split()[0]


def _options(argv: list[str]) -> str:
    """The options as given, but a file argument (`--raw`) named only as FILE: the results
    are committed and must not carry a path of the machine they ran on."""
    shown: list[str] = []
    for arg in argv:
        shown.append("FILE" if shown and shown[-1] == "--raw" else
                     "--raw FILE" if arg.startswith("--raw=") else arg)
    return " ".join(shown)


async def main_async(args: argparse.Namespace) -> int:
    if args.report_only:
        write_report()
        return 0
    if len(h.cpus()) < 2:
        print("the benchmarks need at least 2 usable cores (server and load apart)")
        return 2
    if args.child:
        return await run_child(args)
    info = h.machine()
    info["load_average_at_start"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    figures = {int(f) for f in args.figures.split(",")}
    dbs = ["sqlite", *(["postgres"] if PG_URL else [])]
    results: dict[str, Any] = {"not_measured": []}
    if not PG_URL:
        results["not_measured"].append(
            "PostgreSQL figures: GARMIN_SYNC_TEST_DATABASE_URL is not set")
    root = Path(tempfile.mkdtemp(prefix="garmin-sync-bench-"))
    started = time.perf_counter()
    plan = [("status", db) for db in dbs if 1 in figures]
    # whether the sandbox can serve what the sync figures ask of it
    plan += [("sandbox", "none")] if figures & {2, 3, 7} else []
    plan += [("tail-default", db) for db in dbs if 2 in figures]
    plan += [("tail", db) for db in dbs if 2 in figures]
    plan += [("tail-apart", db) for db in dbs if 2 in figures]
    plan += [("sync", db) for db in dbs if 3 in figures]
    plan += [("login", db) for db in dbs if 4 in figures]
    plan += [("upsert", db) for db in dbs if 5 in figures]
    plan += [("memory", db) for db in dbs if 6 in figures]
    plan += [("scale", db) for db in dbs if 7 in figures]
    plan += [("webhooks", db) for db in dbs if 8 in figures]
    try:
        for key, db in plan:
            await guarded(results, key, db, args, root, info)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    info["load_average_at_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    log(f"suite done in {time.perf_counter() - started:.0f} s")
    print()
    print(render(results))
    print()
    print(h.dumps({key: value for key, value in info.items()}))
    if args.raw:
        Path(args.raw).write_text(h.dumps({"machine": info, "results": results}))
    if not args.no_write:
        write_report()
    return 0


def write_report() -> None:
    """The charts and BENCHMARKS.md, from every result in bench/results/."""
    try:
        from bench import charts
    except ImportError:  # matplotlib is the bench extra's: the table needs no chart
        log("charts skipped: matplotlib is missing (pip install -e '.[bench]')")
    else:
        for path in charts.draw(RESULTS):
            log(f"wrote {path.relative_to(REPO)}")
    report.write_markdown(REPO / "BENCHMARKS.md")
    log(f"wrote {REPO / 'BENCHMARKS.md'} and {RESULTS.relative_to(REPO)}/")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--figures", default="1,2,3,4,5,6,7,8")
    parser.add_argument("--users", type=int,
                        help="users of figure 3 (default 1,000, the issue's size; quick 500)")
    parser.add_argument("--memory-users", type=int, default=10_000)
    parser.add_argument("--tail-users", type=int,
                        help="users synced under figure 2's probe (default 1,000; quick 300)")
    parser.add_argument("--probe-rps", type=float, default=200.0,
                        help="status requests/s of the probe of figures 2 and 4")
    parser.add_argument("--logins", type=int, default=64, help="concurrent logins, figure 4")
    parser.add_argument("--scale-sizes",
                        help="users per sync of figure 7 (default 100,500,1000,2000,5000; "
                             "quick 100,500,1000)")
    parser.add_argument("--quick", action="store_true",
                        help="shorter runs, fewer rounds, smaller figures 2 and 7")
    parser.add_argument("--no-write", action="store_true",
                        help="write neither bench/results/ nor BENCHMARKS.md")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild the charts and BENCHMARKS.md from "
                             "bench/results/")
    parser.add_argument("--raw", help="also write the raw results as JSON to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.users is None:
        args.users = 500 if args.quick else 1000
    if args.tail_users is None:
        args.tail_users = 300 if args.quick else 1000
    if args.scale_sizes is None:
        args.scale_sizes = "100,500,1000" if args.quick else "100,500,1000,2000,5000"
    sys.exit(asyncio.run(main_async(args)))


def sizes(text: str) -> list[int]:
    return [int(size) for size in text.split(",")]


if __name__ == "__main__":
    main()
