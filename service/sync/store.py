"""Persistence for sync: idempotent upserts, cursors, jobs.

Upserts use one `INSERT ... ON CONFLICT (natural key) DO UPDATE` per batch, on SQLite and
PostgreSQL alike, so running the same sync twice changes no row count.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q

from service.models import (
    Activity,
    DailyHealth,
    JobStatus,
    JobTrigger,
    SyncCursor,
    SyncJob,
    SyncKind,
    UserLease,
)

BATCH = 500
ACTIVITY_UPDATE = [
    "activity_type", "name", "start_time_utc", "start_time_local", "duration_seconds",
    "distance_meters", "calories", "average_hr", "max_hr", "elevation_gain", "raw_json",
    "updated_at",
]
DAY_UPDATE = [
    "steps", "resting_hr", "sleep_seconds", "sleep_score", "average_stress",
    "body_battery_high", "body_battery_low", "hrv_last_night", "raw_json", "updated_at",
]


async def upsert_activities(
    user_id: str, rows: Iterable[dict[str, Any]], now: datetime, connection: BaseDBAsyncClient
) -> int:
    objects = [Activity(user_id=user_id, first_seen=now, updated_at=now, **row) for row in rows]
    for start in range(0, len(objects), BATCH):
        await Activity.bulk_create(
            objects[start:start + BATCH], on_conflict=["user_id", "garmin_activity_id"],
            update_fields=ACTIVITY_UPDATE, using_db=connection,
        )
    return len(objects)


async def upsert_days(
    user_id: str, rows: Iterable[dict[str, Any]], now: datetime, connection: BaseDBAsyncClient
) -> int:
    objects = [DailyHealth(user_id=user_id, first_seen=now, updated_at=now, **row)
               for row in rows]
    for start in range(0, len(objects), BATCH):
        await DailyHealth.bulk_create(
            objects[start:start + BATCH], on_conflict=["user_id", "calendar_date"],
            update_fields=DAY_UPDATE, using_db=connection,
        )
    return len(objects)


# --- cursors ----------------------------------------------------------------------------


async def resume_cursors(user_id: str, now: datetime, spread_seconds: float) -> None:
    """After a login: make sure both kinds have a cursor and are due soon (spread out)."""
    await SyncCursor.bulk_create(
        [SyncCursor(user_id=user_id, kind=kind) for kind in SyncKind], ignore_conflicts=True
    )
    for kind in SyncKind:
        due = now + timedelta(seconds=random.uniform(0, spread_seconds))  # noqa: S311
        await SyncCursor.filter(user_id=user_id, kind=kind).update(
            next_sync_at=due, backoff_until=None, consecutive_failures=0, last_error=None
        )


async def resume_cursors_if_missing(user_id: str) -> None:
    """Cursors for a user connected before cursors existed (or by another path)."""
    await SyncCursor.bulk_create(
        [SyncCursor(user_id=user_id, kind=kind) for kind in SyncKind], ignore_conflicts=True
    )


async def pause_cursors(user_id: str, reason: str) -> None:
    """No scheduled syncs until a new login (the session is gone or expired)."""
    await SyncCursor.filter(user_id=user_id).update(next_sync_at=None, last_error=reason[:200])


async def due_cursors(now: datetime, limit: int) -> list[SyncCursor]:
    return await SyncCursor.filter(
        Q(next_sync_at__lte=now) & (Q(backoff_until__isnull=True) | Q(backoff_until__lte=now))
    ).order_by("next_sync_at").limit(limit)


async def claim_cursor(cursor: SyncCursor, next_at: datetime) -> bool:
    """Compare-and-set on `next_sync_at`: of several replicas seeing the same due cursor,
    exactly one moves it forward and runs the job for this interval."""
    return bool(await SyncCursor.filter(
        id=cursor.id, next_sync_at=cursor.next_sync_at
    ).update(next_sync_at=next_at))


async def cursor_of(user_id: str, kind: SyncKind) -> SyncCursor | None:
    return await SyncCursor.get_or_none(user_id=user_id, kind=kind)


async def cursors_of(user_id: str) -> list[SyncCursor]:
    return await SyncCursor.filter(user_id=user_id)


# --- jobs -------------------------------------------------------------------------------


async def create_job(user_id: str, kind: SyncKind, trigger: JobTrigger,
                     status: JobStatus = JobStatus.PENDING, error: str | None = None,
                     worker: str | None = None) -> SyncJob:
    return await SyncJob.create(user_id=user_id, kind=kind, trigger=trigger, status=status,
                                error=error, worker=worker)


async def finish_job(job: SyncJob, status: JobStatus, now: datetime, error: str | None = None,
                     connection: BaseDBAsyncClient | None = None) -> None:
    job.status = status
    job.finished_at = now
    job.error = error[:200] if error else None
    await job.save(using_db=connection, update_fields=[
        "status", "finished_at", "error", "items_fetched", "items_upserted", "items_skipped",
    ])


async def recover_stale_jobs(now: datetime, pending_timeout: timedelta) -> int:
    """Jobs left RUNNING by a worker that lost its lease (it died or stalled), and jobs
    PENDING for longer than any start could take, become FAILED: none stays RUNNING forever.
    """
    stale = 0
    running = await SyncJob.filter(status=JobStatus.RUNNING)
    leases = {lease.user_id: lease for lease in
              await UserLease.filter(user_id__in=[job.user_id for job in running])}
    for job in running:
        lease = leases.get(job.user_id)
        if (lease is not None and lease.owner is not None and lease.token == job.lease_token
                and lease.expires_at is not None and lease.expires_at > now):
            continue
        stale += await SyncJob.filter(id=job.id, status=JobStatus.RUNNING).update(
            status=JobStatus.FAILED, finished_at=now,
            error="worker stopped before the job finished")
    stale += await SyncJob.filter(
        status=JobStatus.PENDING, created_at__lt=now - pending_timeout
    ).update(status=JobStatus.FAILED, finished_at=now, error="job never started")
    return stale


async def jobs_page(user_id: str, limit: int, before_id: int | None) -> list[SyncJob]:
    query = SyncJob.filter(user_id=user_id)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return await query.order_by("-id").limit(limit)
