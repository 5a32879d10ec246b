"""Figure 8: what the webhook outbox costs a sync, and how fast a dispatcher drains it.

- Overhead: figure 3's sync (seeded users, as figure 7 seeds them) run several times in one
  run, alternately with webhooks disabled and enabled (one endpoint, a local receiver), each
  in a fresh database. Ratio: the service's CPU per user with webhooks (the sync plus
  delivering every event it wrote) / without. Context: runs whose endpoint accepts
  connections and never answers ("held"), so the sync writes every event and the
  dispatcher delivers none: what writing the events costs.
- Drain: an outbox filled beforehand with M events; a service with the scheduler off
  starts and its dispatcher delivers them. Compared with a bare sender: a process on the
  same core that signs and POSTs the same bodies with aiohttp at the same concurrency, with
  no database (what the outbox's claim and bookkeeping add to sending).

The receiver and the bare sender are in bench/webhook_peers.py; the receiver runs on the
load generator's core and verifies every signature with the `standardwebhooks` package.

Also here: figure 5's re-upserts (what the upsert writes when nothing or everything
changed), called from figure 5.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import sqlite3
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench import common as suite

# bench.run as a module, not its names: it imports this one (either may be the main module)
from bench import harness as h
from bench.constants import LATENCY_MS
from bench.fig_sync import wait_jobs
from bench.webhook_peers import DISPATCH_CONCURRENCY, SECRET, sample_events

ENDPOINT_ID = "bench"
ACCOUNT = "hooks@example.com"


# --- helpers of the figure's process -----------------------------------------------------


def hook_settings(receiver: h.Proc, url: str | None = None) -> dict[str, str]:
    """The service settings (Env adds the GARMIN_SYNC_ prefix) of one local endpoint: the
    receiver, or `url`."""
    endpoint = {"id": ENDPOINT_ID, "url": url or receiver.url + "/hook", "secrets": [SECRET]}
    return {"WEBHOOKS_ENABLED": "true", "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
            "WEBHOOKS_CONCURRENCY": str(DISPATCH_CONCURRENCY),
            "WEBHOOKS_ENDPOINTS": json.dumps([endpoint])}


async def receiver_stats(receiver: h.Proc, reset: bool = False) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        if reset:
            async with http.post(receiver.url + "/reset") as response:
                assert response.status == 204
        async with http.get(receiver.url + "/stats") as response:
            stats: dict[str, Any] = await response.json()
            return stats


async def wait_received(receiver: h.Proc, expected: int, timeout: float,
                        on_first: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Poll the receiver until `expected` distinct deliveries arrived; `on_first` is given
    the count the first poll that sees any found."""
    deadline = time.monotonic() + timeout
    seen = False
    while True:
        stats = await receiver_stats(receiver)
        if stats["received"] and not seen:
            seen = True
            if on_first is not None:
                on_first(stats["received"])
        if stats["unique"] >= expected:
            return stats
        if time.monotonic() > deadline:
            raise RuntimeError(f"the receiver got {stats['unique']} of {expected} events "
                               f"in {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def scalar(url: str, query: str) -> int:
    """One number from the database, outside Tortoise (cheap, and safe beside a service);
    0 for a statement that returns no row."""
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(query) or 0)
        finally:
            await conn.close()

    def read() -> int:
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite://"))) as conn:
            row = conn.execute(query).fetchone()
            conn.commit()
            return int(row[0]) if row else 0

    return await asyncio.to_thread(read)


async def fill_outbox(url: str, made: list[Any], endpoint_url: str) -> None:
    """Write `made` to the outbox as the sync does (`outbox.emit`, 500 per transaction)."""
    from tortoise.transactions import in_transaction

    from service import db as service_db
    from service.webhooks import outbox
    from service.webhooks.config import Endpoint

    endpoints = [Endpoint(id=ENDPOINT_ID, url=endpoint_url, secrets=(SECRET,))]
    ctx = await service_db.open_context(url)

    async def work() -> None:
        service_db.activate(ctx)
        for start in range(0, len(made), 500):
            async with in_transaction("default") as connection:
                for event in made[start:start + 500]:
                    await outbox.emit(connection, event, endpoints)

    try:
        await asyncio.get_running_loop().create_task(work(), context=contextvars.Context())
    finally:
        await service_db.close_context(ctx)


# --- overhead: the sync with and without webhooks ----------------------------------------


@contextlib.asynccontextmanager
async def held_endpoint() -> AsyncIterator[str]:
    """The URL of an endpoint that accepts connections and never answers: a dispatcher's
    POSTs to it wait out their timeout, so it delivers nothing."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def sync_run(root: Path, db: str, index: int, n_users: int, mode: str,
                   sandbox: h.Proc, session: str, receiver: h.Proc,
                   held_url: str) -> dict[str, Any]:
    """One sync of `n_users` seeded users in a fresh database, webhooks "off", "on" (until
    the receiver has every event the sync wrote) or "held" (to `held_url`)."""
    env = suite.Env(root, f"webhooks-sync-{index}", db)
    try:
        await suite.empty_database(env.url)
        await suite.seed_users(env.url, env.key, session, n_users,
                         datetime.now(UTC) - timedelta(seconds=1), prefix="hook")
        await receiver_stats(receiver, reset=True)
        hooks = {"off": {}, "on": hook_settings(receiver),
                 "held": hook_settings(receiver, held_url)}[mode]
        settings = {**suite.SYNC_SETTINGS, "LOGGING_LEVEL": "WARNING", **hooks}
        service = env.service("sync", env.service_env(sandbox, **settings), h.server_cpu())
        await h.wait_ready(service, "/healthz")
        cpu0, started = h.cpu_seconds(service.pid), time.perf_counter()
        await wait_jobs(service, 2 * n_users, timeout=60 + n_users * 0.5)
        jobs_cpu, jobs_wall = h.cpu_seconds(service.pid) - cpu0, time.perf_counter() - started
        events = await scalar(env.url, "SELECT count(*) FROM webhook_delivery")
        stats = (await wait_received(receiver, events, 60 + events / 50)
                 if mode == "on" else None)
        cpu, wall = h.cpu_seconds(service.pid) - cpu0, time.perf_counter() - started
        service.stop()
        ok = await scalar(env.url, "SELECT count(*) FROM sync_job WHERE status = 'SUCCESS'")
        return {"mode": mode, "users": n_users, "jobs_ok": ok, "events": events,
                "receiver": stats, "cpu_s_per_user": cpu / n_users,
                "jobs_cpu_s_per_user": jobs_cpu / n_users, "wall_s": wall,
                "jobs_wall_s": jobs_wall}
    finally:
        env.close()


async def overhead(root: Path, env: suite.Env, sandbox: h.Proc, receiver: h.Proc, n_users: int,
                   quick: bool) -> dict[str, Any]:
    """Alternating runs (off on held held on off, twice over unless quick); medians per
    mode."""
    session = await suite.sandbox_session(sandbox, ACCOUNT)
    order = ["off", "on", "held", "held", "on", "off"] * (1 if quick else 2)
    runs = []
    async with held_endpoint() as held_url:
        for index, mode in enumerate(order):
            suite.log(f"  webhooks ({env.db}): sync of {n_users} users, webhooks {mode}")
            runs.append(await sync_run(root, env.db, index, n_users, mode, sandbox, session,
                                       receiver, held_url))

    def median(key: str, mode: str) -> float:
        return float(statistics.median(run[key] for run in runs if run["mode"] == mode))

    on, off, held = (median("cpu_s_per_user", mode) for mode in ("on", "off", "held"))
    hooked = [run for run in runs if run["mode"] == "on"]
    return {"users": n_users, "order": order, "runs": runs,
            "cpu_s_per_user_on": on, "cpu_s_per_user_off": off, "ratio": on / off,
            "cpu_s_per_user_held": held, "held_ratio": held / off,
            "held_events": sum(run["events"] for run in runs if run["mode"] == "held"),
            "jobs_cpu_ratio": median("jobs_cpu_s_per_user", "on")
            / median("jobs_cpu_s_per_user", "off"),
            "wall_ratio": median("wall_s", "on") / median("wall_s", "off"),
            "events": sum(run["events"] for run in hooked),
            "received": sum(run["receiver"]["received"] for run in hooked),
            "unique": sum(run["receiver"]["unique"] for run in hooked),
            "invalid": sum(run["receiver"]["invalid"] for run in hooked),
            "jobs_ok": sum(run["jobs_ok"] for run in runs),
            "jobs": 2 * n_users * len(runs)}


# --- drain: a filled outbox to the receiver ----------------------------------------------


async def drain_round(root: Path, db: str, index: int, count: int,
                      receiver: h.Proc) -> dict[str, Any]:
    env = suite.Env(root, f"webhooks-drain-{index}", db)
    try:
        await suite.empty_database(env.url)
        await fill_outbox(env.url, sample_events(count), receiver.url + "/hook")
        # fresh planner statistics, as autovacuum gives a backlog that built up: with none,
        # PostgreSQL's claim query may scan every pending row once per pending row
        await scalar(env.url, "ANALYZE webhook_delivery")
        await receiver_stats(receiver, reset=True)
        settings = {"SYNC_ENABLED": "false", "LOGGING_LEVEL": "WARNING",
                    **hook_settings(receiver)}
        service = env.service("dispatch", env.service_env(None, **settings), h.server_cpu())
        marks: dict[str, float] = {}

        def first(received: int) -> None:
            marks["cpu"], marks["at"] = h.cpu_seconds(service.pid), time.perf_counter()
            marks["before"] = received

        await h.wait_ready(service, "/healthz")
        stats = await wait_received(receiver, count, 60 + count / 20, on_first=first)
        cpu = h.cpu_seconds(service.pid) - marks["cpu"]
        busy = cpu / (time.perf_counter() - marks["at"])
        service.stop()
        delivered = await scalar(
            env.url, "SELECT count(*) FROM webhook_delivery WHERE status = 'delivered'")
        dispatcher = {**stats, "rate": (stats["received"] - 1) / stats["span_s"],
                      "delivered_rows": delivered, "service_cpu_share": busy,
                      "cpu_ms_per_delivery": cpu / (count - marks["before"]) * 1000}

        await receiver_stats(receiver, reset=True)
        sender = h.spawn("bare-sender", ["-m", "bench.webhook_peers", "send", "--url",
                                         receiver.url + "/hook", "--count", str(count)],
                         h.clean_env(), env.dir, h.server_cpu())
        env.procs.append(sender)
        code = await asyncio.to_thread(sender.popen.wait, 60 + count / 20)
        lines = sender.output().strip().splitlines()
        if code != 0 or not lines:
            raise RuntimeError(f"bare sender exited {code}:\n{sender.tail()}")
        sent = json.loads(lines[-1])
        stats = await receiver_stats(receiver)
        bare = {**stats, "rate": (stats["received"] - 1) / stats["span_s"],
                "statuses": sent["statuses"], "cpu_ms_per_post": sent["cpu_s"] / count * 1000}
        return {"dispatcher": dispatcher, "bare": bare}
    finally:
        env.close()


async def drain(root: Path, db: str, receiver: h.Proc, count: int,
                rounds: int) -> dict[str, Any]:
    results = []
    for index in range(rounds):
        suite.log(f"  webhooks ({db}): drain of {count} events, round {index + 1}")
        results.append(await drain_round(root, db, index, count, receiver))
    dispatcher = statistics.median(r["dispatcher"]["rate"] for r in results)
    bare = statistics.median(r["bare"]["rate"] for r in results)
    return {"events": count, "concurrency": DISPATCH_CONCURRENCY, "rounds": results,
            "deliveries_per_s": dispatcher, "bare_posts_per_s": bare, "ratio": dispatcher / bare,
            "cpu_ms_per_delivery": statistics.median(
                r["dispatcher"]["cpu_ms_per_delivery"] for r in results),
            "bare_cpu_ms_per_post": statistics.median(
                r["bare"]["cpu_ms_per_post"] for r in results),
            "lost": max(count - r["dispatcher"]["unique"] for r in results),
            "duplicates": max(r["dispatcher"]["received"] - r["dispatcher"]["unique"]
                              for r in results),
            "invalid": max(r["dispatcher"]["invalid"] for r in results),
            "not_marked_delivered": max(count - r["dispatcher"]["delivered_rows"]
                                        for r in results)}


async def figure_webhooks(root: Path, db: str, n_users: int, quick: bool) -> dict[str, Any]:
    env = suite.Env(root, "webhooks", db)
    try:
        sandbox = env.sandbox([{"username": ACCOUNT, "history_days": 7,
                                "latency_ms": LATENCY_MS}], h.client_cpu())
        receiver = h.spawn("receiver", ["-m", "bench.webhook_peers", "receiver"], h.clean_env(),
                           env.dir, h.client_cpu())
        env.procs.append(receiver)
        await h.wait_ready(sandbox, "/_sandbox/requests")
        await h.wait_ready(receiver, "/stats")
        cost = await overhead(root, env, sandbox, receiver, n_users, quick)
        sandbox.stop()  # the drain calls no Garmin
        rate = await drain(root, db, receiver, 5_000 if quick else 10_000, 1 if quick else 2)
        return {"db": db, "overhead": cost, "drain": rate}
    finally:
        env.close()


# --- figure 5: re-upserts ----------------------------------------------------------------


async def upsert_changes(user: str, rows: list[dict[str, Any]],
                         reset: Callable[[], Awaitable[None]], rounds: int) -> dict[str, Any]:
    """What `upsert_of(...).apply` writes: figure 5's timed case (half the rows present),
    then the same rows again (nothing changed: nothing may be written, checked by the
    rows' `updated_at` as well as by what the statement returned), then every row with a
    changed value. Runs inside figure 5's database context."""
    from tortoise.transactions import in_transaction

    from service.models import Activity, SyncKind
    from service.store import upserts

    async def upsert(batch: list[dict[str, Any]]) -> tuple[Any, float]:
        started = time.perf_counter()
        async with in_transaction("default") as connection:
            changed = await upserts.upsert_of(SyncKind.ACTIVITIES, user, batch,
                                              datetime.now(UTC)).apply(connection)
        return changed, time.perf_counter() - started

    await reset()
    first, _ = await upsert(rows)
    unchanged: list[float] = []
    changed: list[float] = []
    rewritten = returned = updated = 0
    current = rows
    for round_ in range(rounds):
        before = datetime.now(UTC)
        same, seconds = await upsert(current)
        unchanged.append(seconds)
        returned += len(same.keys)
        rewritten += await Activity.filter(user_id=user, updated_at__gt=before).count()
        current = [{**row, "calories": (row["calories"] or 0) + 1 + round_} for row in current]
        altered, seconds = await upsert(current)
        changed.append(seconds)
        updated += len(altered.updated)
    count = len(rows)
    return {"rows": count, "first": {"inserted": len(first.inserted),
                                     "updated": len(first.updated),
                                     "unchanged": count - len(first.keys)},
            "unchanged_written": max(rewritten, returned),
            "unchanged_rows_per_s": count / statistics.median(unchanged),
            "changed_updated": updated // rounds,
            "changed_rows_per_s": count / statistics.median(changed)}
