"""Figure 5: upsert rate, service.store.sync.upsert_activities / raw driver executemany."""

from __future__ import annotations

import asyncio
import contextvars
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import webhooks
from bench.common import Env, empty_database
from tests.support.replicas import PASSWORD


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
