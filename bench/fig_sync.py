"""Figures 2 and 3: a service syncing every connected user once, its efficiency against
the floor its calls set, and the status probe's tail while it syncs."""

from __future__ import annotations

import asyncio
import contextvars
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import harness as h
from bench.common import (
    CONCURRENCY_SETTINGS,
    SYNC_SETTINGS,
    Env,
    empty_database,
    login_all,
    metric_sum,
    patch_accounts,
    sandbox_token,
    sandbox_totals,
    set_cursors_due,
    sync_concurrency,
)
from bench.constants import APART_NICE, LATENCY_MS, PROBE_POLL, W, engine_key
from bench.probe import StatusProbe
from tests.support.replicas import username_of


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


# the access tokens' lifetime in figure 3: far longer than its logins and sync take, so no
# token comes within garmin.di_refresh_margin_seconds (or garth's margin) of its expiry
TOKEN_LIFETIME = 3 * 3600
# the sandbox's counters of token requests: garth's exchanges (login and refresh), DI's
# ticket exchanges (login) and refresh grants
TOKEN_CALLS = ("exchanges", "di_exchanges", "di_refresh_attempts")


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
    # every Garmin call of the sync: data calls and token calls of either engine (a
    # garth refresh is an exchange, a DI one a refresh grant; a login is neither here)
    calls = sum(after[k] - before[k] for k in ("api_calls", *TOKEN_CALLS))
    rows = await job_rows(env.url)
    result = sync_summary(env.db, rows, n_users, calls, cpu, sandbox_cpu)
    result["engine"] = env.engine
    result["token_calls"] = sum(after[k] - before[k] for k in TOKEN_CALLS)
    result["refreshes"] = sum(after[k] - before[k] for k in ("refreshes", "di_refreshes"))
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


async def figure_sync(root: Path, db: str, n_users: int, engine: str) -> dict[str, Any]:
    """Figure 3 on `engine`: its users log in through the API (so their sessions are that
    engine's), then one sync of them all. Their access tokens (DI and garth's OAuth2 alike)
    outlive the figure and the sync starts seconds after the logins, so it runs on valid
    tokens: it measures data calls, not refreshes (the result counts the refreshes, and
    the table shows them)."""
    env = Env(root, engine_key("sync", engine), db, engine)
    users = [f"sync-{i}" for i in range(n_users)]
    names = [username_of(u) for u in users]
    lifetimes = {"di_access_lifetime_seconds": TOKEN_LIFETIME,
                 "oauth2_lifetime_seconds": TOKEN_LIFETIME}
    try:
        await empty_database(env.url)
        sandbox = env.sandbox([{"username": n, "history_days": 7, **lifetimes} for n in names],
                              h.client_cpu())
        await h.wait_ready(sandbox, "/_sandbox/requests")
        login = await login_phase(env, sandbox, users)
        await patch_accounts(sandbox, names, {"latency_ms": LATENCY_MS})
        return {**await sync_phase(env, sandbox, n_users), "login": login}
    finally:
        env.close()


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
