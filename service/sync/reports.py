"""What a sync job tells the calling services, written in the job's own transactions.

A job that stored data reports the rows it inserted or changed (`activities.synced`,
`health.synced`; nothing when it changed none) and its kind's recovery; a failed job counts
toward `sync.failing`; a job whose session Garmin rejected reports `session.expired`. Each
is emitted on the connection of the transaction that makes the change, so the event commits
with it or not at all.
"""

from __future__ import annotations

from datetime import date, datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from service.models import SyncJob, SyncKind
from service.store.upserts import Changed
from service.webhooks import events
from service.webhooks.outbox import Outbox


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


async def job_stored(outbox: Outbox, connection: BaseDBAsyncClient, job: SyncJob,
                     changed: Changed, now: datetime, streak: bool = True) -> list[str | None]:
    """The data event of a successful job (if it changed anything) and its kind's recovery
    (looked for only when `streak`: a failure streak of the kind may exist)."""
    if not outbox.enabled:
        return []
    if job.kind == SyncKind.ACTIVITIES:
        ids = sorted((int(key) for key in changed.keys), reverse=True)
        event = events.activities_synced(job.user_id, now, job.id, len(changed.inserted),
                                         len(changed.updated), ids,
                                         outbox.config.max_ids_per_event)
    else:
        event = events.health_synced(job.user_id, now, job.id,
                                     [_day(key) for key in changed.keys])
    return [await outbox.emit(connection, event, now),
            await outbox.sync_succeeded(connection, job.user_id, job.kind.value, job.id, now)
            if streak else None]


async def job_failed(outbox: Outbox, connection: BaseDBAsyncClient, job: SyncJob,
                     now: datetime, rate_limited: bool) -> str | None:
    """Count the failure (a Garmin 429 backoff neither counts nor resets the count)."""
    return await outbox.sync_failed(connection, job.user_id, job.kind.value, job.id, now,
                                    rate_limited)


async def session_expired(outbox: Outbox, connection: BaseDBAsyncClient, user_id: str,
                          reason: str, now: datetime) -> str | None:
    return await outbox.emit(connection, events.session_expired(user_id, now, reason), now)
