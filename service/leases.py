"""Per-user mutual exclusion that holds across replicas: a lease row in the database.

A lease is claimed by one atomic conditional UPDATE (the row is free or its lease expired),
which works the same on SQLite and PostgreSQL and needs no transaction held across a Garmin
call. Every claim bumps `token`, a fencing token: a worker whose lease expired (it stalled
or died) can no longer pass `fence()`, so its late writes are refused. Inside one process a
set of held user ids answers "busy" without a database round trip.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F, Q

from service.models import UserLease
from service.sessions.store import utcnow

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """The lease expired and may belong to another worker now: do not write."""


@dataclass(frozen=True)
class Lease:
    user_id: str
    owner: str
    token: int


class UserLeases:
    """Claims, renews, fences and releases per-user leases for one worker."""

    def __init__(
        self, worker_id: str, ttl_seconds: float, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.worker_id = worker_id
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock
        self._local: set[str] = set()

    def is_held_here(self, user_id: str) -> bool:
        return user_id in self._local

    async def acquire(self, user_id: str, purpose: str) -> Lease | None:
        """The lease, or None when another request or worker holds it."""
        if user_id in self._local:
            return None
        self._local.add(user_id)
        try:
            lease = await self._claim(user_id, purpose)
        except BaseException:
            self._local.discard(user_id)
            raise
        if lease is None:
            self._local.discard(user_id)
        return lease

    async def _claim(self, user_id: str, purpose: str) -> Lease | None:
        await UserLease.bulk_create([UserLease(user_id=user_id)], ignore_conflicts=True)
        now = self._clock()
        owner = f"{self.worker_id}/{uuid.uuid4().hex[:12]}"
        claimed = await UserLease.filter(
            Q(user_id=user_id) & (Q(owner__isnull=True) | Q(expires_at__lt=now))
        ).update(owner=owner, token=F("token") + 1, expires_at=now + self._ttl,
                 purpose=purpose)
        if not claimed:
            return None
        row = await UserLease.get(user_id=user_id)
        if row.owner != owner:
            return None
        return Lease(user_id, owner, row.token)

    async def renew(self, lease: Lease) -> bool:
        """Push the expiry out; False when the lease was lost meanwhile."""
        return await self._extend(lease, None)

    async def fence(self, lease: Lease, connection: BaseDBAsyncClient) -> None:
        """Inside the caller's transaction: prove the lease is still ours, or raise LeaseLost.

        On PostgreSQL the UPDATE also locks the lease row until the transaction ends, so no
        other worker can claim it between this check and the caller's writes.
        """
        if not await self._extend(lease, connection):
            raise LeaseLost(f"lease of user {lease.user_id} was lost")

    async def _extend(self, lease: Lease, connection: BaseDBAsyncClient | None) -> bool:
        query = UserLease.filter(user_id=lease.user_id, owner=lease.owner, token=lease.token)
        if connection is not None:
            query = query.using_db(connection)
        return bool(await query.update(expires_at=self._clock() + self._ttl))

    async def release(self, lease: Lease) -> None:
        try:
            await UserLease.filter(
                user_id=lease.user_id, owner=lease.owner, token=lease.token
            ).update(owner=None, expires_at=None, purpose=None)
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
