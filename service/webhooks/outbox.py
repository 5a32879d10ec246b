"""The transactional outbox: events written with the change they report, claimed for delivery.

Invariants:

- `emit(connection, event, ...)` writes on the caller's connection: inside the caller's
  `in_transaction()` block the event commits, or rolls back, with the change. Fan-out to
  endpoints happens here, at emit time: one delivery row per endpoint whose filter takes
  the event, so each delivery carries its own attempts and backoff, an endpoint added
  later does not receive the backlog, and an event no endpoint wants writes nothing.
- Each user's events are numbered by `webhook_user_sequence`, whose row the emitting
  transaction holds locked until it commits: sequence order is commit order.
- What an event writes costs no round trip of its own where it can. On PostgreSQL it is
  data-modifying CTEs that ride on the next statement of a `service.store.sql.transaction`
  (`sql.with_next`; alone before COMMIT when none follows). SQLite has no such CTEs, so
  there its three statements run on SQLite's own thread, in one handoff: queued for the
  commit of such a transaction (`sql.at_commit`), else at once. A sync job emits in every
  transaction that changed data, and each round trip, or handoff to SQLite's thread, costs
  more CPU than the writes themselves.
- A delivery is sent only by the dispatcher holding its claim (`claimed_by` plus an expiry
  in the future). `claim` takes, per (endpoint, user), only the pending delivery with the
  lowest sequence, so event N+1 never leaves before event N is delivered or dead. The
  claim is one statement; on PostgreSQL it locks its candidates `FOR UPDATE SKIP LOCKED`,
  so replicas claim disjoint rows without waiting on each other; SQLite has one writer at
  a time and runs it without the locking clause.
- A claim that is never finished (the dispatcher died) expires and the delivery is claimed
  again: at-least-once delivery, with the event's one `message_id` on every attempt.
- `finish_many` is fenced by each delivery's claim: an outcome whose claim was lost is
  not written.
"""

from __future__ import annotations

import functools
import secrets
import sqlite3
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


@functools.lru_cache(maxsize=16)
def _emit_ctes(count: int) -> sql.Sql:
    """PostgreSQL: the sequence, the event and its deliveries as data-modifying CTEs, which
    ride on the caller's next statement (`sql.with_next`): every job that changed data
    emits, so each round trip counts. Each runs once, in the caller's transaction, and the
    upsert's row lock orders the user's events as the three statements of SQLite do."""
    endpoints = ", ".join("(?::text)" for _ in range(count))
    return sql.Sql(f"""
        emitted_sequence AS (
            INSERT INTO webhook_user_sequence (user_id, sequence) VALUES (?::text, 1)
            ON CONFLICT (user_id) DO UPDATE SET sequence = webhook_user_sequence.sequence + 1
            RETURNING sequence),
        emitted_event AS (
            INSERT INTO webhook_event (message_id, user_id, type, sequence, body, created_at)
            SELECT ?::text, ?::text, ?::text, sequence, ?::text, ?::timestamptz
            FROM emitted_sequence
            RETURNING id, sequence),
        emitted_deliveries AS (
            INSERT INTO webhook_delivery (event_id, endpoint, user_id, sequence, status,
                                          attempts, next_attempt_at, created_at)
            SELECT e.id, target.endpoint, ?::text, e.sequence, 'pending', 0, ?::timestamptz,
                   ?::timestamptz
            FROM emitted_event AS e CROSS JOIN (VALUES {endpoints}) AS target (endpoint))
    """)  # noqa: S608 - placeholders only


async def emit(connection: BaseDBAsyncClient, event: Event, endpoints: Sequence[Endpoint],
               now: datetime | None = None) -> str | None:
    """Write `event` and its deliveries on `connection` (the caller's transaction); the
    event's message id, or None when no endpoint takes this type (nothing written)."""
    wanted = [endpoint.id for endpoint in endpoints if endpoint.wants(event.type)]
    if not wanted:
        return None
    now = now or utcnow()
    message_id = new_message_id()
    if connection.capabilities.dialect == "postgres":
        ctes = _emit_ctes(len(wanted))
        values = [event.user_id, message_id, event.user_id, event.type, event.body(), now,
                  event.user_id, now, now, *wanted]
        if not await sql.with_next(connection, ctes, values):
            await sql.run_ctes(connection, ctes, values)
        return message_id
    body = event.body()
    user_id = event.user_id
    sequence_sql, event_sql = NEXT_SEQUENCE.render("sqlite"), INSERT_EVENT.render("sqlite")
    deliveries_sql = _insert_deliveries_sql(len(wanted)).render("sqlite")

    def write(driver: sqlite3.Connection) -> None:
        sequence = driver.execute(sequence_sql, (user_id,)).fetchone()[0]
        event_id = driver.execute(event_sql, (message_id, user_id, event.type, sequence, body,
                                              now)).fetchone()[0]
        values: list[Any] = []
        for endpoint_id in wanted:
            values += [event_id, endpoint_id, user_id, sequence, PENDING, now, now]
        driver.execute(deliveries_sql, values)

    if not sql.at_commit(connection, write):
        await sql.on_sqlite_thread(connection, write)
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

# The head-of-line check reads "pending" as `status NOT IN ('delivered', 'dead')`, which
# no index can serve: the only index that answers it is (endpoint, user_id, sequence),
# probed per candidate, whatever the statistics say. Written `status = 'pending'`, the
# planner could probe through the (status, next_attempt_at) index instead, and does
# when stale statistics make it believe that almost nothing is pending: every probe then
# walks every pending delivery, seconds per claim once thousands are queued.
_CANDIDATES = """
    SELECT d.id, EXISTS (
               SELECT 1 FROM webhook_delivery n
               WHERE n.endpoint = d.endpoint AND n.user_id = d.user_id
                 AND n.sequence > d.sequence AND n.status NOT IN ('delivered', 'dead')
           ) AS has_next
    FROM webhook_delivery d
    WHERE d.status = 'pending' AND d.next_attempt_at <= ?
      AND (d.claim_expires_at IS NULL OR d.claim_expires_at < ?)
      AND NOT EXISTS (
          SELECT 1 FROM webhook_delivery e
          WHERE e.endpoint = d.endpoint AND e.user_id = d.user_id
            AND e.sequence < d.sequence AND e.status NOT IN ('delivered', 'dead'))
    ORDER BY d.next_attempt_at, d.id
    LIMIT ?
"""
# One statement picks, claims and returns the deliveries with their events, and whether
# each one's user has another delivery queued behind it (`has_next`, which the head blocks
# until it ends: the dispatcher claims again then rather than at its next poll). On
# PostgreSQL the picked rows are locked (a CTE with FOR UPDATE runs once, before the
# update), so replicas claim disjoint rows; the update checks the claim again all the same.
# SQLite's RETURNING cannot name a joined table, so there the event is read by subqueries,
# and `has_next` from the picked rows, which are materialized once: a subquery there on
# webhook_delivery itself would scan the whole table for every row, as SQLite uses no index
# for the table being updated.
_CLAIM = """
    WITH picked AS {materialized}({candidates})
    UPDATE webhook_delivery
    SET claimed_by = ?, claim_expires_at = ?, attempts = webhook_delivery.attempts + 1
    {events}
    WHERE webhook_delivery.id IN (SELECT id FROM picked){join}
      AND webhook_delivery.status = 'pending'
      AND (webhook_delivery.claim_expires_at IS NULL OR webhook_delivery.claim_expires_at < ?)
    RETURNING webhook_delivery.id, webhook_delivery.endpoint, webhook_delivery.user_id,
              webhook_delivery.sequence, webhook_delivery.attempts,
              webhook_delivery.next_attempt_at, webhook_delivery.created_at, {returning}
"""
_EVENT_COLUMNS = ("message_id", "type", "body")
CLAIM = {
    "postgres": sql.Sql(_CLAIM.format(
        materialized="", candidates=_CANDIDATES + " FOR UPDATE OF d SKIP LOCKED",
        events="FROM webhook_event e, picked p",
        join=" AND e.id = webhook_delivery.event_id AND p.id = webhook_delivery.id",
        returning=", ".join([*(f"e.{column}" for column in _EVENT_COLUMNS), "p.has_next"]))),
    "sqlite": sql.Sql(_CLAIM.format(
        materialized="MATERIALIZED ", candidates=_CANDIDATES, events="", join="",
        returning=", ".join([*(f"(SELECT e.{column} FROM webhook_event e "  # noqa: S608
                               f"WHERE e.id = webhook_delivery.event_id) AS {column}"
                               for column in _EVENT_COLUMNS),
                             "(SELECT p.has_next FROM picked p "
                             "WHERE p.id = webhook_delivery.id) AS has_next"]))),
}


@functools.lru_cache(maxsize=64)
def _finish_sql(count: int) -> sql.Sql:
    """The outcomes of `count` attempts in one statement, each fenced by its claim."""
    rows = ", ".join("(?::bigint, ?::text, ?::text, ?::timestamptz, ?::integer, ?::text, "
                     "?::timestamptz)" for _ in range(count))
    return sql.Sql(f"""
        WITH outcome (id, owner, status, next_attempt_at, last_status, last_error,
                      finished_at) AS (VALUES {rows})
        UPDATE webhook_delivery
        SET status = outcome.status, next_attempt_at = outcome.next_attempt_at,
            last_status = outcome.last_status, last_error = outcome.last_error,
            finished_at = outcome.finished_at, claimed_by = NULL, claim_expires_at = NULL
        FROM outcome
        WHERE webhook_delivery.id = outcome.id AND webhook_delivery.claimed_by = outcome.owner
        RETURNING webhook_delivery.id
    """)  # noqa: S608 - placeholders only


RETRY = sql.Sql("""
    UPDATE webhook_delivery
    SET status = 'pending', attempts = 0, next_attempt_at = ?, created_at = ?,
        finished_at = NULL, claimed_by = NULL, claim_expires_at = NULL
    WHERE id = ? AND status = 'dead'
""")


@dataclass(frozen=True, slots=True)
class Claimed:
    """One claimed delivery with what sending it needs (`attempts` counts this one)."""

    id: int
    endpoint: str
    user_id: str
    sequence: int
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    owner: str
    message_id: str
    type: str
    body: str
    has_next: bool  # another delivery of the same user waits behind this one


@dataclass(frozen=True, slots=True)
class Outcome:
    """An attempt's result, to be recorded by `finish`."""

    claimed: Claimed
    status: DeliveryStatus
    next_attempt_at: datetime
    http_status: int | None
    error: str | None
    now: datetime


def _aware(value: Any) -> datetime:
    """A timestamp as Tortoise reads it: SQLite returns the stored text, naive means UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def claim(owner: str, now: datetime, lease_seconds: float, limit: int) -> list[Claimed]:
    """Claim up to `limit` due deliveries for `owner`, the head of each (endpoint, user)."""
    connection = sql.connection_of(WebhookDelivery)
    dialect = connection.capabilities.dialect
    rows = await sql.fetch(CLAIM.get(dialect, CLAIM["sqlite"]), [
        now, now, limit, owner, now + timedelta(seconds=lease_seconds), now], connection)
    result = [Claimed(int(row["id"]), str(row["endpoint"]), str(row["user_id"]),
                      int(row["sequence"]), int(row["attempts"]),
                      _aware(row["next_attempt_at"]), _aware(row["created_at"]), owner,
                      str(row["message_id"]), str(row["type"]), str(row["body"]),
                      bool(row["has_next"]))
              for row in rows]
    return sorted(result, key=lambda c: (c.next_attempt_at, c.id))


async def finish_many(outcomes: Sequence[Outcome]) -> set[int]:
    """Record attempts' outcomes in one statement; the ids of the deliveries whose claim
    still held (the others were not written)."""
    if not outcomes:
        return set()
    values: list[Any] = []
    for outcome in outcomes:
        finished_at = outcome.now if outcome.status != DeliveryStatus.PENDING else None
        values += [outcome.claimed.id, outcome.claimed.owner, outcome.status.value,
                   outcome.next_attempt_at, outcome.http_status,
                   outcome.error[:200] if outcome.error else None, finished_at]
    rows = await sql.fetch(_finish_sql(len(outcomes)), values,
                           sql.connection_of(WebhookDelivery))
    return {int(row["id"]) for row in rows}


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
