"""Figure 7: per-user sync cost at growing user counts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench import harness as h
from bench.common import Env, empty_database, log, sandbox_session, seed_users
from bench.constants import LATENCY_MS
from bench.fig_sync import sync_phase

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
