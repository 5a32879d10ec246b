"""Figure 4: a burst of logins against its floor, and whether any request carried another
user's credentials."""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench import harness as h
from bench.common import Env, empty_database, login_all, patch_accounts, sync_concurrency
from bench.constants import LATENCY_MS, engine_key
from bench.probe import StatusProbe
from tests.support.replicas import username_of


def executor_threads(env: dict[str, str]) -> int:
    """garmin.executor_threads as the service started with `env` resolves it: the number
    of logins it can run at once."""
    return sync_concurrency(env)["threads"]


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
                       quick: bool, engine: str) -> dict[str, Any]:
    """Figure 4 on `engine`: a burst of logins against the floor the sandbox latency and
    the thread pool set, under the status probe, and whether any request carried another
    user's credentials (the sandbox's record of every request says)."""
    env = Env(root, engine_key("login", engine), db, engine)
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
            "db": db, "engine": engine, "logins": logins, "executor_threads": threads, **run,
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
