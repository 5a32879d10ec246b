"""Figure 6: RSS of one service process with 10,000 connected users, idle and during sync."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench import harness as h
from bench.common import (
    SYNC_SETTINGS,
    Env,
    empty_database,
    headers,
    metric_sum,
    sandbox_session,
    seed_users,
    set_all_due,
)
from bench.constants import LATENCY_MS


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
