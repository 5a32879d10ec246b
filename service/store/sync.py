"""Persistence for sync: idempotent upserts, cursors, jobs.

The upserts live in `service.store.upserts` (re-exported here): they write only rows that
changed and say which.

What every job and every scheduler pass runs is hand-written SQL (`service.store.sql`):
with Tortoise building each query, the bookkeeping cost more CPU than the job's own work.
The rarer paths (pausing, resuming, listing) stay on Tortoise's query API.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from service.models import (
    JobStatus,
    JobTrigger,
    SyncCursor,
    SyncJob,
    SyncKind,
)
from service.store import sql

# the job's upserts, where callers of the sync store have always found them
from service.store.upserts import ACTIVITY_UPDATE as ACTIVITY_UPDATE
from service.store.upserts import upsert_activities as upsert_activities
from service.store.upserts import upsert_days as upsert_days
from service.store.upserts import upsert_of as upsert_of

# --- cursors ----------------------------------------------------------------------------


# every kind's cursor created or reset in one statement (a login's share of the event loop)
RESUME = sql.Sql(f"""
    INSERT INTO sync_cursor (user_id, kind, next_sync_at, consecutive_failures)
    VALUES {", ".join("(?, ?, ?, 0)" for _ in SyncKind)}
    ON CONFLICT (user_id, kind) DO UPDATE SET next_sync_at = excluded.next_sync_at,
        backoff_until = NULL, consecutive_failures = 0, last_error = NULL
""")  # noqa: S608 - only placeholders are formatted in


async def resume_cursors(user_id: str, now: datetime, spread_seconds: float,
                         connection: BaseDBAsyncClient | None = None) -> None:
    """After a login: make sure both kinds have a cursor and are due soon (spread out)."""
    values: list[Any] = []
    for kind in SyncKind:
        due = now + timedelta(seconds=random.uniform(0, spread_seconds))  # noqa: S311
        values += [user_id, kind.value, due]
    await sql.execute(RESUME, values, connection or sql.connection_of(SyncCursor))


async def resume_cursors_if_missing(user_id: str) -> None:
    """Cursors for a user connected before cursors existed (or by another path)."""
    await SyncCursor.bulk_create(
        [SyncCursor(user_id=user_id, kind=kind) for kind in SyncKind], ignore_conflicts=True
    )


async def throttled_until(user_id: str, now: datetime) -> datetime | None:
    """When Garmin's throttling of the user ends: the latest backoff still running of a
    kind whose last job ended RATE_LIMITED (None when no 429 holds the user back).

    A manual sync then waits too: each call during the block meets another 429 and, by
    Garmin's rules, extends it. Backoffs after other failures (5xx, timeouts) do not count,
    so "sync now" stays a way to retry those at once.
    """
    until: datetime | None = None
    for cursor in await SyncCursor.filter(user_id=user_id, backoff_until__gt=now):
        last = await (SyncJob.filter(user_id=user_id, kind=cursor.kind,
                                     finished_at__isnull=False)
                      .order_by("-id").first())
        if last is not None and last.status == JobStatus.RATE_LIMITED:
            assert cursor.backoff_until is not None
            until = max(until or cursor.backoff_until, cursor.backoff_until)
    return until


PAUSE = sql.Sql("UPDATE sync_cursor SET next_sync_at = NULL, last_error = ? WHERE user_id = ?")


async def pause_cursors(user_id: str, reason: str,
                        connection: BaseDBAsyncClient | None = None) -> None:
    """No scheduled syncs until a new login (the session is gone or expired)."""
    await sql.execute(PAUSE, [reason[:200], user_id], connection or sql.connection_of(SyncCursor))


@dataclass(frozen=True)
class DueCursor:
    """A due cursor as a scheduler pass sees it; `next_sync_at` is the stored value, kept
    as the database returned it so the claim compares it exactly."""

    id: int
    user_id: str
    kind: SyncKind
    next_sync_at: Any


# A user whose lease is held (a login, an MFA, a disconnect or a job, on any replica) is
# left due rather than claimed: the pass after the lease ends takes it. Claimed, the job
# could only be recorded SKIPPED; a new user's first sync would then show as skipped and
# wait for a retry, since a login still holds the lease when it makes the cursors due.
DUE = sql.Sql("""
    SELECT c.id, c.user_id, c.kind, c.next_sync_at FROM sync_cursor c
    WHERE c.next_sync_at <= ? AND (c.backoff_until IS NULL OR c.backoff_until <= ?)
      AND NOT EXISTS (SELECT 1 FROM user_lease l WHERE l.user_id = c.user_id
                      AND l.owner IS NOT NULL AND l.expires_at > ?)
    ORDER BY c.next_sync_at LIMIT ?
""")


async def due_cursors(now: datetime, limit: int) -> list[DueCursor]:
    """Due cursors of users no one holds, oldest first."""
    rows = await sql.fetch(DUE, [now, now, now, limit], sql.connection_of(SyncCursor))
    return [DueCursor(row["id"], row["user_id"], SyncKind(row["kind"]), row["next_sync_at"])
            for row in rows]


@lru_cache(maxsize=64)
def _claim_sql(count: int) -> sql.Sql:
    cases = " ".join("WHEN ? THEN ?::timestamptz" for _ in range(count))
    matches = " OR ".join("(id = ? AND next_sync_at = ?)" for _ in range(count))
    # placeholders only: the values go in as parameters
    return sql.Sql(f"UPDATE sync_cursor SET next_sync_at = CASE id {cases} END "  # noqa: S608
                   f"WHERE {matches} RETURNING id")


async def claim_cursors(cursors: Sequence[DueCursor],
                        next_at: Sequence[datetime]) -> list[DueCursor]:
    """Compare-and-set on `next_sync_at`, one statement for a whole scheduler pass: of
    several replicas seeing the same due cursor, exactly one moves it forward (to its
    `next_at`) and runs the job for this interval. Returns the cursors claimed here."""
    if not cursors:
        return []
    values: list[Any] = []
    for cursor, at in zip(cursors, next_at, strict=True):
        values += [cursor.id, at]
    for cursor in cursors:
        values += [cursor.id, cursor.next_sync_at]
    rows = await sql.fetch(_claim_sql(len(cursors)), values, sql.connection_of(SyncCursor))
    claimed = {row["id"] for row in rows}
    return [cursor for cursor in cursors if cursor.id in claimed]


# `failing_streak`: a failure streak of that kind is being counted for `sync.failing` (its
# row in webhook_sync_health exists), so the next success has it to clear; read with the
# cursors so that a success without a streak, nearly every one, writes nothing for it
CURSORS_OF = sql.Sql("""
    SELECT c.*, EXISTS (SELECT 1 FROM webhook_sync_health h
                        WHERE h.user_id = c.user_id AND h.kind = c.kind) AS failing_streak
    FROM sync_cursor c WHERE c.user_id = ?
""")
CURSOR_SUCCEEDED = sql.Sql("""
    UPDATE sync_cursor SET last_synced_date = ?, last_success_at = ?, backoff_until = NULL,
        consecutive_failures = 0, last_error = NULL
    WHERE id = ?
""")
CURSOR_FAILED = sql.Sql("""
    UPDATE sync_cursor SET consecutive_failures = ?, backoff_until = ?, last_error = ?
    WHERE id = ?
""")


async def cursor_of(user_id: str, kind: SyncKind) -> SyncCursor | None:
    return await SyncCursor.get_or_none(user_id=user_id, kind=kind)


async def cursors_of(user_id: str) -> list[tuple[SyncCursor, bool]]:
    """The user's cursors, each with whether its kind has a failure streak counted."""
    rows = await sql.fetch(CURSORS_OF, [user_id], sql.connection_of(SyncCursor))
    result = []
    for row in rows:
        streak = bool(row.pop("failing_streak"))
        result.append((sql.model(SyncCursor, row), streak))
    return result


async def cursor_succeeded(cursor: SyncCursor, synced: date, now: datetime,
                           connection: BaseDBAsyncClient) -> None:
    await sql.execute(CURSOR_SUCCEEDED, [synced, now, cursor.id], connection)
    cursor.last_synced_date, cursor.last_success_at = synced, now
    cursor.backoff_until, cursor.consecutive_failures, cursor.last_error = None, 0, None


async def cursor_failed(cursor: SyncCursor, failures: int, until: datetime, error: str,
                        connection: BaseDBAsyncClient | None = None) -> None:
    await sql.execute(CURSOR_FAILED, [failures, until, error[:200], cursor.id],
                      connection or sql.connection_of(SyncCursor))
    cursor.consecutive_failures, cursor.backoff_until = failures, until
    cursor.last_error = error[:200]


# --- jobs -------------------------------------------------------------------------------


async def create_job(user_id: str, kind: SyncKind, trigger: JobTrigger,
                     status: JobStatus = JobStatus.PENDING, error: str | None = None,
                     worker: str | None = None) -> SyncJob:
    return await SyncJob.create(user_id=user_id, kind=kind, trigger=trigger, status=status,
                                error=error, worker=worker)


@lru_cache(maxsize=64)
def _create_jobs_sql(count: int) -> sql.Sql:
    rows = ", ".join("(?, ?, ?, ?, ?, 0, 0, 0)" for _ in range(count))
    # placeholders only: the values go in as parameters
    return sql.Sql('INSERT INTO sync_job (user_id, kind, "trigger", status, created_at, '  # noqa: S608
                   "items_fetched, items_upserted, items_skipped) "
                   f"VALUES {rows} RETURNING id, user_id, kind")


async def create_jobs(specs: Sequence[tuple[str, SyncKind]], trigger: JobTrigger,
                      now: datetime) -> list[SyncJob]:
    """PENDING jobs for (user, kind) pairs, one statement for a whole scheduler pass."""
    if not specs:
        return []
    values: list[Any] = []
    for user_id, kind in specs:
        values += [user_id, kind.value, trigger.value, JobStatus.PENDING.value, now]
    rows = await sql.fetch(_create_jobs_sql(len(specs)), values, sql.connection_of(SyncJob))
    ids = {(row["user_id"], SyncKind(row["kind"])): row["id"] for row in rows}
    return [sql.model(SyncJob, {
        "id": ids[(user_id, kind)], "user_id": user_id, "kind": kind, "trigger": trigger,
        "status": JobStatus.PENDING, "created_at": now, "started_at": None,
        "finished_at": None, "items_fetched": 0, "items_upserted": 0, "items_skipped": 0,
        "error": None, "worker": None, "lease_token": None,
    }) for user_id, kind in specs]


START_JOB = sql.Sql(
    "UPDATE sync_job SET status = ?, started_at = ?, worker = ?, lease_token = ? WHERE id = ?")
FINISH_JOB = sql.Sql("""
    UPDATE sync_job SET status = ?, finished_at = ?, error = ?, items_fetched = ?,
        items_upserted = ?, items_skipped = ?
    WHERE id = ?
""")


async def start_job(job: SyncJob, now: datetime, worker: str, lease_token: int,
                    connection: BaseDBAsyncClient | None = None) -> None:
    """Mark the job RUNNING. Inside a transaction (`connection`), the caller applies the
    change to the in-memory job with `started` once the transaction committed."""
    await sql.execute(START_JOB, [JobStatus.RUNNING.value, now, worker, lease_token, job.id],
                      connection or sql.connection_of(SyncJob))
    if connection is None:
        started(job, now, worker, lease_token)


def started(job: SyncJob, now: datetime, worker: str, lease_token: int) -> None:
    job.status, job.started_at, job.worker, job.lease_token = (
        JobStatus.RUNNING, now, worker, lease_token)


async def finish_job(job: SyncJob, status: JobStatus, now: datetime, error: str | None = None,
                     connection: BaseDBAsyncClient | None = None) -> None:
    job.status = status
    job.finished_at = now
    job.error = error[:200] if error else None
    await sql.execute(FINISH_JOB, [
        status.value, now, job.error, job.items_fetched, job.items_upserted,
        job.items_skipped, job.id,
    ], connection or sql.connection_of(SyncJob))


RECOVER_RUNNING = sql.Sql("""
    UPDATE sync_job SET status = ?, finished_at = ?, error = ?
    WHERE status = ? AND NOT EXISTS (
        SELECT 1 FROM user_lease
        WHERE user_lease.user_id = sync_job.user_id AND user_lease.owner IS NOT NULL
            AND user_lease.token = sync_job.lease_token AND user_lease.expires_at > ?)
""")
RECOVER_PENDING = sql.Sql(
    "UPDATE sync_job SET status = ?, finished_at = ?, error = ? "
    "WHERE status = ? AND created_at < ?")


async def recover_stale_jobs(now: datetime, pending_timeout: timedelta) -> int:
    """Jobs left RUNNING by a worker that lost its lease (it died or stalled), and jobs
    PENDING for longer than any start could take, become FAILED: none stays RUNNING forever.

    A RUNNING job is stale unless its user's lease is held, unexpired, under the very
    token the job started with. Two statements, however many jobs run.
    """
    connection = sql.connection_of(SyncJob)
    failed = JobStatus.FAILED.value
    stale = await sql.execute(RECOVER_RUNNING, [
        failed, now, "worker stopped before the job finished", JobStatus.RUNNING.value, now,
    ], connection)
    stale += await sql.execute(RECOVER_PENDING, [
        failed, now, "job never started", JobStatus.PENDING.value, now - pending_timeout,
    ], connection)
    return stale


async def jobs_page(user_id: str, limit: int, before_id: int | None) -> list[SyncJob]:
    query = SyncJob.filter(user_id=user_id)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return await query.order_by("-id").limit(limit)
