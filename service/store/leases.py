"""Per-user mutual exclusion that holds across replicas: a lease row in the database.

A lease is claimed by one atomic statement: an upsert that creates the user's row on the
first claim and otherwise updates it only when the lease is free or expired (`INSERT ... ON
CONFLICT DO UPDATE ... WHERE ... RETURNING`, the same on SQLite and PostgreSQL; a scheduler
pass claims all its users' leases with one such statement). It needs no transaction held
across a Garmin call. Every claim bumps `token`, a fencing token: a worker whose lease
expired (it stalled or died) can no longer pass `fence()`, so its late writes are refused.
Inside one process a set of held user ids answers "busy" without a database round trip.
The statements are hand-written (`service.store.sql`): every sync job claims, fences and
releases a lease.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from service.clock import Now, utcnow
from service.models import UserLease
from service.store import sql

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=64)
def _claim_sql(count: int) -> sql.Sql:
    """Claim `count` users' leases: a new row starts at token 1 (a claim of an existing row
    adds one); the conflict branch runs only where the lease is free or expired, and the
    rows returned are the leases claimed."""
    rows = ", ".join("(?, ?, 1, ?, ?)" for _ in range(count))
    # placeholders only: the values go in as parameters
    return sql.Sql(f"""
        INSERT INTO user_lease (user_id, owner, token, expires_at, purpose) VALUES {rows}
        ON CONFLICT (user_id) DO UPDATE SET
            owner = excluded.owner, token = user_lease.token + 1,
            expires_at = excluded.expires_at, purpose = excluded.purpose
        WHERE user_lease.owner IS NULL OR user_lease.expires_at < ?
        RETURNING user_id, token
    """)  # noqa: S608


EXTEND = sql.Sql(
    "UPDATE user_lease SET expires_at = ? WHERE user_id = ? AND owner = ? AND token = ?")
RELEASE = sql.Sql("""
    UPDATE user_lease SET owner = NULL, expires_at = NULL, purpose = NULL
    WHERE user_id = ? AND owner = ? AND token = ?
""")


class LeaseLost(Exception):
    """The lease expired and may belong to another worker now: do not write."""


@dataclass(frozen=True)
class Lease:
    user_id: str
    owner: str
    token: int


class UserLeases:
    """Claims, renews, fences and releases per-user leases for one worker."""

    def __init__(self, worker_id: str, ttl_seconds: float, clock: Now = utcnow) -> None:
        self.worker_id = worker_id
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock
        self._local: set[str] = set()

    def is_held_here(self, user_id: str) -> bool:
        return user_id in self._local

    async def acquire(self, user_id: str, purpose: str) -> Lease | None:
        """The lease, or None when another request or worker holds it."""
        return (await self.acquire_many([user_id], purpose)).get(user_id)

    async def acquire_many(self, user_ids: Sequence[str], purpose: str) -> dict[str, Lease]:
        """The leases of several users claimed in one statement (a scheduler pass claims
        its users' so); users busy here or elsewhere are left out."""
        wanted = sorted({user for user in user_ids if user not in self._local})
        if not wanted:
            return {}
        self._local.update(wanted)
        try:
            now = self._clock()
            owners = {user: f"{self.worker_id}/{uuid.uuid4().hex[:12]}" for user in wanted}
            values: list[object] = []
            for user in wanted:  # in one order on every replica: row locks never deadlock
                values += [user, owners[user], now + self._ttl, purpose]
            rows = await sql.fetch(_claim_sql(len(wanted)), [*values, now],
                                   sql.connection_of(UserLease))
        except BaseException:
            self._local.difference_update(wanted)
            raise
        leases = {row["user_id"]: Lease(row["user_id"], owners[row["user_id"]],
                                        int(row["token"])) for row in rows}
        self._local.difference_update(user for user in wanted if user not in leases)
        return leases

    async def renew(self, lease: Lease) -> bool:
        """Push the expiry out; False when the lease was lost meanwhile."""
        return await self._extend(lease, None)

    async def fence(self, lease: Lease, connection: BaseDBAsyncClient,
                    release: bool = False) -> None:
        """Inside the caller's transaction: prove the lease is still ours, or raise LeaseLost.

        On PostgreSQL the UPDATE also locks the lease row until the transaction ends, so no
        other worker can claim it between this check and the caller's writes. With
        `release`, the same statement releases the lease, when the transaction commits: the
        caller's last write needs no separate release (call `forget` after the commit).
        """
        if release:
            proven = bool(await sql.execute(RELEASE, [lease.user_id, lease.owner, lease.token],
                                            connection))
        else:
            proven = await self._extend(lease, connection)
        if not proven:
            raise LeaseLost(f"lease of user {lease.user_id} was lost")

    def forget(self, lease: Lease) -> None:
        """After a committed `fence(release=True)`: the lease is no longer held here."""
        self._local.discard(lease.user_id)

    async def _extend(self, lease: Lease, connection: BaseDBAsyncClient | None) -> bool:
        return bool(await sql.execute(
            EXTEND, [self._clock() + self._ttl, lease.user_id, lease.owner, lease.token],
            connection or sql.connection_of(UserLease)))

    async def release(self, lease: Lease) -> None:
        try:
            await sql.execute(RELEASE, [lease.user_id, lease.owner, lease.token],
                              sql.connection_of(UserLease))
        finally:
            self._local.discard(lease.user_id)

    @asynccontextmanager
    async def hold(self, user_id: str, purpose: str) -> AsyncIterator[Lease | None]:
        """Yields the lease (released on exit), or None when the user is busy elsewhere."""
        lease = await self.acquire(user_id, purpose)
        try:
            yield lease
        finally:
            if lease is not None:
                await self.release(lease)
