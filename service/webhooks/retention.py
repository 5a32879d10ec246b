"""Outbox retention: finished deliveries, and then their events, are deleted after a while.

Rules:

- A delivered delivery is deleted `webhooks.retention_delivered_days` after it finished, a
  dead one `webhooks.retention_dead_days` after it gave up (until then an operator can
  retry it). A pending delivery, due or waiting for its next attempt, is never deleted,
  however old: it still has to be sent.
- An event is deleted with the last of its deliveries, in the same transaction, and never
  while one of its deliveries remains: an event still to be sent (or retried) is kept.
  `webhook_user_sequence` is never pruned, so a user's next event still numbers after the
  last one.
- Deletion runs in batches of `webhooks.retention_batch_size` deliveries, each batch a
  transaction of its own that holds its locks for a few milliseconds, oldest first. A
  finished delivery's `next_attempt_at` is when it finished (`outbox.FINISH` writes both),
  so the `(status, next_attempt_at)` index that serves the claim finds them too.
- Several replicas may prune at once. On PostgreSQL a batch takes its candidates
  `FOR UPDATE SKIP LOCKED`, so concurrent batches delete disjoint deliveries without
  waiting on each other; a row another one deleted first is simply not found again. The
  batch then locks its deliveries' events (in id order, so two batches never deadlock)
  before checking that no delivery of theirs is left: of two batches deleting the last two
  deliveries of one event, the one that gets the lock second sees the other's deletion
  committed and deletes the event, so no event is left behind with no delivery. SQLite has
  one writer at a time and runs the same statements without the locking clauses.
- A dead delivery an operator retries at the moment it is pruned is either retried (it is
  pending again, and the batch's condition no longer matches it) or gone (the retry
  answers 404), never both.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.models.webhooks import DeliveryStatus, WebhookDelivery
from service.store import sql
from service.webhooks.config import WebhooksConfig
from service.webhooks.metrics import WebhookMetrics

log = logging.getLogger(__name__)

FINISHED = (DeliveryStatus.DELIVERED, DeliveryStatus.DEAD)

# The batch is chosen once, in a materialized CTE: as a plain `IN (subquery)`, PostgreSQL
# may run the subquery again for each row deleted, and its LIMIT would then bound nothing.
_DELETE_DELIVERIES = """
    WITH batch AS MATERIALIZED (
        SELECT id FROM webhook_delivery
        WHERE status = ? AND next_attempt_at < ? AND finished_at < ?
        ORDER BY next_attempt_at
        LIMIT ? {lock})
    DELETE FROM webhook_delivery
    WHERE id IN (SELECT id FROM batch) AND status = ?
    RETURNING event_id
"""
DELETE_DELIVERIES = {
    "postgres": sql.Sql(_DELETE_DELIVERIES.format(lock="FOR UPDATE SKIP LOCKED")),
    "sqlite": sql.Sql(_DELETE_DELIVERIES.format(lock="")),
}


@functools.lru_cache(maxsize=16)
def _lock_events_sql(count: int) -> sql.Sql:
    ids = ", ".join("?" for _ in range(count))
    return sql.Sql(f"SELECT id FROM webhook_event WHERE id IN ({ids}) ORDER BY id FOR UPDATE")  # noqa: S608


@functools.lru_cache(maxsize=16)
def _delete_events_sql(count: int) -> sql.Sql:
    ids = ", ".join("?" for _ in range(count))
    return sql.Sql(f"""
        DELETE FROM webhook_event
        WHERE id IN ({ids})
          AND NOT EXISTS (SELECT 1 FROM webhook_delivery d WHERE d.event_id = webhook_event.id)
    """)  # noqa: S608 - placeholders only


@dataclass(frozen=True)
class Pruned:
    """What one prune deleted."""

    delivered: int = 0
    dead: int = 0
    events: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.dead + self.events


def retention_days(config: WebhooksConfig, status: DeliveryStatus) -> float:
    """How long finished deliveries of `status` are kept; 0 is forever."""
    if status == DeliveryStatus.DELIVERED:
        return config.retention_delivered_days
    return config.retention_dead_days


def enabled(config: WebhooksConfig) -> bool:
    return any(retention_days(config, status) > 0 for status in FINISHED)


async def prune_batch(status: DeliveryStatus, cutoff: datetime, limit: int) -> tuple[int, int]:
    """Delete up to `limit` deliveries of `status` finished before `cutoff`, and those of
    their events that have no delivery left; (deliveries, events) deleted."""
    async with sql.transaction(WebhookDelivery) as connection:
        dialect = connection.capabilities.dialect
        rows = await sql.fetch(DELETE_DELIVERIES.get(dialect, DELETE_DELIVERIES["sqlite"]),
                               [status.value, cutoff, cutoff, limit, status.value], connection)
        if not rows:
            return 0, 0
        event_ids = sorted({int(row["event_id"]) for row in rows})
        if dialect == "postgres":
            await sql.fetch(_lock_events_sql(len(event_ids)), event_ids, connection)
        events = await sql.execute(_delete_events_sql(len(event_ids)), event_ids, connection)
    return len(rows), events


async def prune(config: WebhooksConfig, now: datetime,
                metrics: WebhookMetrics | None = None) -> Pruned:
    """Delete, batch by batch, every finished delivery past its retention at `now`, and the
    events left without a delivery. Safe to run in several replicas at once."""
    limit = config.retention_batch_size
    counts = {DeliveryStatus.DELIVERED: 0, DeliveryStatus.DEAD: 0}
    events = 0
    for status in FINISHED:
        days = retention_days(config, status)
        if days <= 0:
            continue
        cutoff = now - timedelta(days=days)
        while True:
            deleted, deleted_events = await prune_batch(status, cutoff, limit)
            counts[status] += deleted
            events += deleted_events
            if metrics is not None:
                metrics.pruned(status.value, deleted)
                metrics.pruned("event", deleted_events)
            # a short batch: nothing is left, or another replica holds the rest
            if deleted < limit:
                break
    return Pruned(counts[DeliveryStatus.DELIVERED], counts[DeliveryStatus.DEAD], events)
