"""The transactional outbox: events written with the change they report, claimed for delivery.

Invariants:

- `emit(connection, event, ...)` writes on the caller's connection: inside the caller's
  `in_transaction()` block the event commits, or rolls back, with the change. Fan-out to
  endpoints happens here, at emit time: one delivery row per endpoint whose filter takes
  the event, so each delivery carries its own attempts and backoff, an endpoint added
  later does not receive the backlog, and an event no endpoint wants writes nothing.
- Each user's events are numbered by `webhook_user_sequence`, whose row the emitting
  transaction holds locked until it commits: sequence order is commit order.
- A delivery is sent only by the dispatcher holding its claim (`claimed_by` plus an expiry
  in the future). `claim` takes, per (endpoint, user), only the pending delivery with the
  lowest sequence, so event N+1 never leaves before event N is delivered or dead. On
  PostgreSQL the candidates are locked `FOR UPDATE SKIP LOCKED` inside the short claim
  transaction, so replicas claim disjoint rows without waiting on each other; SQLite has
  one writer at a time and runs the same statements without the locking clause.
- A claim that is never finished (the dispatcher died) expires and the delivery is claimed
  again: at-least-once delivery, with the event's one `message_id` on every attempt.
- `finish` is fenced by the claim: a dispatcher that lost its claim writes nothing.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from service.models.webhooks import DeliveryStatus, WebhookDelivery
from service.store import sql
from service.webhooks import events
from service.webhooks.config import Endpoint, WebhooksConfig
from service.webhooks.events import Event

PENDING, DELIVERED, DEAD = (DeliveryStatus.PENDING.value, DeliveryStatus.DELIVERED.value,
                            DeliveryStatus.DEAD.value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_message_id() -> str:
    """`msg_` + the time in milliseconds + 64 random bits: unique, roughly time-ordered."""
    return f"msg_{int(time.time() * 1000):012x}{secrets.token_hex(8)}"


NEXT_SEQUENCE = sql.Sql("""
    INSERT INTO webhook_user_sequence (user_id, sequence) VALUES (?, 1)
    ON CONFLICT (user_id) DO UPDATE SET sequence = webhook_user_sequence.sequence + 1
    RETURNING sequence
""")
INSERT_EVENT = sql.Sql("""
    INSERT INTO webhook_event (message_id, user_id, type, sequence, body, created_at)
    VALUES (?, ?, ?, ?, ?, ?) RETURNING id
""")


@functools.lru_cache(maxsize=16)
def _insert_deliveries_sql(count: int) -> sql.Sql:
    rows = ", ".join("(?, ?, ?, ?, ?, 0, ?, ?)" for _ in range(count))
    return sql.Sql(f"""
        INSERT INTO webhook_delivery (event_id, endpoint, user_id, sequence, status, attempts,
                                      next_attempt_at, created_at)
        VALUES {rows}
    """)  # noqa: S608 - placeholders only


async def emit(connection: BaseDBAsyncClient, event: Event, endpoints: Sequence[Endpoint],
               now: datetime | None = None) -> str | None:
    """Write `event` and its deliveries on `connection` (the caller's transaction); the
    event's message id, or None when no endpoint takes this type (nothing written)."""
    wanted = [endpoint.id for endpoint in endpoints if endpoint.wants(event.type)]
    if not wanted:
        return None
    now = now or utcnow()
    rows = await sql.fetch(NEXT_SEQUENCE, [event.user_id], connection)
    sequence = int(rows[0]["sequence"])
    message_id = new_message_id()
    rows = await sql.fetch(INSERT_EVENT, [message_id, event.user_id, event.type, sequence,
                                          event.body(), now], connection)
    event_id = int(rows[0]["id"])
    values: list[Any] = []
    for endpoint_id in wanted:
        values += [event_id, endpoint_id, event.user_id, sequence, PENDING, now, now]
    await sql.execute(_insert_deliveries_sql(len(wanted)), values, connection)
    return message_id


# --- sync health: `sync.failing` after N failures in a row, `sync.recovered` after --------

COUNT_FAILURE = sql.Sql("""
    INSERT INTO webhook_sync_health (user_id, kind, failures, failing) VALUES (?, ?, 1, ?)
    ON CONFLICT (user_id, kind) DO UPDATE SET failures = webhook_sync_health.failures + 1
    RETURNING id, failures, failing
""")
MARK_FAILING = sql.Sql("UPDATE webhook_sync_health SET failing = ? WHERE id = ?")
CLEAR_HEALTH = sql.Sql(
    "DELETE FROM webhook_sync_health WHERE user_id = ? AND kind = ? RETURNING failing")


class Outbox:
    """`emit` and the sync-health transitions bound to one configuration (a no-op when
    webhooks are disabled). Every method writes on the connection it is given."""

    def __init__(self, config: WebhooksConfig) -> None:
        self.config = config
        # the running dispatcher's `wake`, told after a commit that emitted
        self.wake: Callable[[], None] | None = None

    def committed(self, *message_ids: str | None) -> None:
        """Call after the transaction that emitted commits: the dispatcher claims at once
        rather than at its next poll."""
        if self.wake is not None and any(message_ids):
            self.wake()

    @property
    def enabled(self) -> bool:
        return self.config.enabled and bool(self.config.endpoints)

    async def emit(self, connection: BaseDBAsyncClient, event: Event | None,
                   now: datetime | None = None) -> str | None:
        if event is None or not self.enabled:
            return None
        return await emit(connection, event, self.config.endpoints, now)

    async def sync_failed(self, connection: BaseDBAsyncClient, user_id: str, kind: str,
                          job_id: int, now: datetime, rate_limited: bool) -> str | None:
        """Count a failed job (a 429 backoff neither counts nor resets); emits
        `sync.failing` once, when the count reaches `failing_after`."""
        if rate_limited or not self.enabled:
            return None
        rows = await sql.fetch(COUNT_FAILURE, [user_id, kind, False], connection)
        row = rows[0]
        failures = int(row["failures"])
        if bool(row["failing"]) or failures < self.config.failing_after:
            return None
        await sql.execute(MARK_FAILING, [True, row["id"]], connection)
        return await self.emit(connection, events.sync_failing(user_id, now, kind, failures,
                                                               job_id), now)

    async def sync_succeeded(self, connection: BaseDBAsyncClient, user_id: str, kind: str,
                             job_id: int, now: datetime) -> str | None:
        """Reset the count; emits `sync.recovered` when `sync.failing` had been sent."""
        if not self.enabled:
            return None
        rows = await sql.fetch(CLEAR_HEALTH, [user_id, kind], connection)
        if not rows or not bool(rows[0]["failing"]):
            return None
        return await self.emit(connection, events.sync_recovered(user_id, now, kind, job_id),
                               now)


# --- claiming and finishing deliveries --------------------------------------------------

_CANDIDATES = """
    SELECT d.id FROM webhook_delivery d
    WHERE d.status = 'pending' AND d.next_attempt_at <= ?
      AND (d.claim_expires_at IS NULL OR d.claim_expires_at < ?)
      AND NOT EXISTS (
          SELECT 1 FROM webhook_delivery e
          WHERE e.endpoint = d.endpoint AND e.user_id = d.user_id
            AND e.status = 'pending' AND e.sequence < d.sequence)
    ORDER BY d.next_attempt_at, d.id
    LIMIT ?
"""
CANDIDATES = {"postgres": sql.Sql(_CANDIDATES + " FOR UPDATE OF d SKIP LOCKED"),
              "sqlite": sql.Sql(_CANDIDATES)}


@functools.lru_cache(maxsize=64)
def _mark_claimed_sql(count: int) -> sql.Sql:
    ids = ", ".join("?" for _ in range(count))
    return sql.Sql(f"""
        UPDATE webhook_delivery
        SET claimed_by = ?, claim_expires_at = ?, attempts = attempts + 1
        WHERE id IN ({ids}) AND status = 'pending'
          AND (claim_expires_at IS NULL OR claim_expires_at < ?)
        RETURNING *
    """)  # noqa: S608 - placeholders only


@functools.lru_cache(maxsize=64)
def _events_sql(count: int) -> sql.Sql:
    ids = ", ".join("?" for _ in range(count))
    return sql.Sql(f"SELECT id, message_id, type, body FROM webhook_event WHERE id IN ({ids})")  # noqa: S608


FINISH = sql.Sql("""
    UPDATE webhook_delivery
    SET status = ?, next_attempt_at = ?, last_status = ?, last_error = ?, finished_at = ?,
        claimed_by = NULL, claim_expires_at = NULL
    WHERE id = ? AND claimed_by = ?
""")
RETRY = sql.Sql("""
    UPDATE webhook_delivery
    SET status = 'pending', attempts = 0, next_attempt_at = ?, created_at = ?,
        finished_at = NULL, claimed_by = NULL, claim_expires_at = NULL
    WHERE id = ? AND status = 'dead'
""")


@dataclass(frozen=True)
class Claimed:
    """One claimed delivery with what sending it needs."""

    delivery: WebhookDelivery
    message_id: str
    type: str
    body: str

    @property
    def owner(self) -> str:
        return str(self.delivery.claimed_by)


async def claim(owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Claimed]:
    """Claim up to `limit` due deliveries for `owner`, the head of each (endpoint, user)."""
    async with sql.transaction(WebhookDelivery) as connection:
        dialect = connection.capabilities.dialect
        rows = await sql.fetch(CANDIDATES.get(dialect, CANDIDATES["sqlite"]),
                               [now, now, limit], connection)
        ids = [int(row["id"]) for row in rows]
        if not ids:
            return []
        claimed = await sql.fetch(_mark_claimed_sql(len(ids)),
                                  [owner, now + timedelta(seconds=lease_seconds), *ids, now],
                                  connection)
        deliveries = [sql.model(WebhookDelivery, row) for row in claimed]
        event_ids = sorted({d.event_id for d in deliveries})
        found = {int(row["id"]): row for row in await sql.fetch(
            _events_sql(len(event_ids)), event_ids, connection)}
    result = [Claimed(d, str(found[d.event_id]["message_id"]), str(found[d.event_id]["type"]),
                      str(found[d.event_id]["body"])) for d in deliveries]
    return sorted(result, key=lambda c: (c.delivery.next_attempt_at, c.delivery.id))


async def finish(claimed: Claimed, status: DeliveryStatus, next_attempt_at: datetime,
                 http_status: int | None, error: str | None, now: datetime) -> bool:
    """Record an attempt's outcome; False when the claim was lost meanwhile (not written)."""
    finished_at = now if status != DeliveryStatus.PENDING else None
    changed = await sql.execute(FINISH, [
        status.value, next_attempt_at, http_status, error[:200] if error else None, finished_at,
        claimed.delivery.id, claimed.owner,
    ], sql.connection_of(WebhookDelivery))
    return bool(changed)


async def retry_dead(delivery_id: int, now: datetime) -> bool:
    """Queue a dead delivery again, with fresh attempts and age (`created_at` is when it was
    last queued); False when there is no dead delivery of that id."""
    return bool(await sql.execute(RETRY, [now, now, delivery_id],
                                  sql.connection_of(WebhookDelivery)))


# --- reading ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryView:
    delivery: WebhookDelivery
    message_id: str
    type: str


async def get_delivery(delivery_id: int) -> DeliveryView | None:
    page = await deliveries_page(None, 1, None, delivery_id)
    return page[0] if page else None


_PAGE = """
    SELECT d.*, e.message_id AS event_message_id, e.type AS event_type
    FROM webhook_delivery d JOIN webhook_event e ON e.id = d.event_id
    WHERE {where}
    ORDER BY d.id DESC
    LIMIT ?
"""


@functools.lru_cache(maxsize=8)
def _page_sql(by_status: bool, before: bool, only: bool) -> sql.Sql:
    where = [clause for clause, wanted in (("d.status = ?", by_status), ("d.id < ?", before),
                                           ("d.id = ?", only)) if wanted]
    return sql.Sql(_PAGE.format(where=" AND ".join(where) or "1 = 1"))


async def deliveries_page(status: DeliveryStatus | None, limit: int, before_id: int | None,
                          only_id: int | None = None) -> list[DeliveryView]:
    """Newest first; `before_id` continues a previous page (it may name a delivery pruned
    since). One statement, so a delivery pruned meanwhile is either listed with its event
    or not at all."""
    filters = [(status.value if status is not None else None), before_id, only_id]
    statement = _page_sql(*(value is not None for value in filters))
    values = [value for value in filters if value is not None]
    rows = await sql.fetch(statement, [*values, limit], sql.connection_of(WebhookDelivery))
    views = []
    for row in rows:
        message_id, event_type = row.pop("event_message_id"), row.pop("event_type")
        views.append(DeliveryView(sql.model(WebhookDelivery, row), str(message_id),
                                  str(event_type)))
    return views


async def backlog() -> tuple[datetime | None, int]:
    """When the oldest pending delivery was queued, and how many deliveries are dead."""
    oldest = await (WebhookDelivery.filter(status=DeliveryStatus.PENDING)
                    .order_by("created_at").first().values_list("created_at", flat=True))
    dead = await WebhookDelivery.filter(status=DeliveryStatus.DEAD).count()
    return (oldest if isinstance(oldest, datetime) else None), dead
