"""A user's session status: from the status cache, the database, or Garmin itself.

Health probes poll the status of every user they hold, so most answers come from memory
(`StatusCache`) or from the row alone while its last validation is fresh. Otherwise a live
check asks Garmin with the stored session (Load-Use-Update, like every session user):
concurrent polls of one user share that one call, a refreshed session is written back with
compare-and-set (also when the check is cancelled, e.g. at shutdown), a definitive
rejection expires the session, and after a Garmin 429 no live check runs until Garmin's
Retry-After has passed.

A live check may refresh the session, and a DI refresh token rotates: two refreshes of one
token kill the session. So a live check holds the user's lease (like a sync job, a login or
an MFA, on any replica) and reads the session again once it holds it; it waits a few
seconds for a busy lease, then answers from the row, "unavailable". A check rejected
because another use rotated the token first goes on with the newer stored session only
while it still holds the lease. The answers from memory or the row take no lease.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from tortoise.backends.base.client import BaseDBAsyncClient

from service.clock import Clock, Monotonic
from service.config import Config
from service.crypto import DecryptionError
from service.garmin import AuthRejected, GarminError, GarminGateway, RateLimited, engine_of
from service.models import (
    GarminAuthenticationState,
    SessionStatus,
    engine_shown,
    mfa_live,
    status_of,
)
from service.sessions.status_cache import StatusCache
from service.store import sessions as store
from service.store.leases import Lease, UserLeases
from service.store.vault import MFA, SESSION, SessionVault
from service.webhooks import events
from service.webhooks.outbox import Outbox

log = logging.getLogger(__name__)


Checked = Literal["live", "cached", "unavailable", "none"]

# how long a live check waits for the user's lease (a running sync job ends within seconds)
LEASE_WAIT_SECONDS = 10.0


@dataclass(frozen=True, eq=False)  # compared by identity: the API memoizes its JSON
class StatusView:
    status: SessionStatus
    checked: Checked
    last_validated: datetime | None
    connected_at: datetime | None
    mfa_pending: bool
    mfa_expires_at: datetime | None
    reason: str | None
    engine: str | None = None
    sync: dict[str, dict[str, Any]] = field(default_factory=dict)


class GarminThrottle:
    """After a Garmin 429 no live check for the user until Garmin's Retry-After (or
    `default_seconds` when it gives none) has passed: asking again extends the block."""

    MAX_USERS = 10_000

    def __init__(self, default_seconds: float, clock: Monotonic = time.monotonic) -> None:
        self._default = default_seconds
        self._clock = clock
        self._until: dict[str, float] = {}  # user -> monotonic end of the block

    def start(self, user_id: str, retry_after: int | None) -> None:
        now = self._clock()
        if len(self._until) >= self.MAX_USERS:
            self._until = {user: end for user, end in self._until.items() if end > now}
        self._until[user_id] = now + (retry_after if retry_after else self._default)

    def holds(self, user_id: str) -> bool:
        until = self._until.get(user_id)
        if until is not None and until <= self._clock():
            del self._until[user_id]
            return False
        return until is not None


class StatusChecks:
    """The status use case behind `GET /api/v1/garmin/session/status` (`SessionService`
    adds the user's own actions, which forget the user's cached answer)."""

    def __init__(self, config: Config, gateway: GarminGateway, vault: SessionVault,
                 clock: Clock, leases: UserLeases, outbox: Outbox) -> None:
        self._config = config
        self._leases = leases
        self._outbox = outbox
        self._gateway = gateway
        self._vault = vault
        self._clock = clock.now
        self._live_checks: dict[str, asyncio.Future[StatusView]] = {}
        self._status_reads: dict[str, asyncio.Future[StatusView]] = {}
        self.throttle = GarminThrottle(config.login.cooldown_seconds, clock.monotonic)
        self.status_cache: StatusCache[StatusView] = StatusCache(
            config.status.cache_seconds, config.status.cache_max_users, clock.monotonic)

    def _view(self, row: GarminAuthenticationState | None, checked: Checked) -> StatusView:
        if row is None:
            return StatusView(SessionStatus.MISSING, "none", None, None, False, None, None)
        now = self._clock()
        waiting = mfa_live(row, now)
        status = status_of(row, now)
        engine = engine_shown(row, status)
        if status is SessionStatus.MFA_PENDING and engine is None:
            engine = self._challenge_engine(row)
        return StatusView(status, checked if row.session_data else "none",
                          row.last_validated, row.connected_at, waiting,
                          row.mfa_expires_at if waiting else None, row.status_reason, engine)

    def _challenge_engine(self, row: GarminAuthenticationState) -> str | None:
        """A pending challenge without `mfa_engine` (stored beside a session before the
        column, where the migration cannot read the engine, or by a replica of the previous
        release while an upgrade rolls out): its own sealed marker names the engine. Such a
        challenge ends within `mfa.ttl_seconds`."""
        if not row.mfa_state:
            return None
        try:
            return engine_of(self._vault.open(row.user_id, MFA, row.mfa_state))
        except DecryptionError:
            return None

    async def status(self, user_id: str, refresh: bool = False) -> StatusView:
        """The session's status plus where each kind of sync stands.

        A repeated poll is answered from `status_cache`; `refresh` always reads (and asks
        Garmin).
        """
        if refresh:
            return await self._read_status(user_id, refresh=True)
        cached = self.status_cache.get(user_id)
        if cached is not None:
            return cached
        # one read per user at a time: when an entry runs out under heavy polling, the
        # polls waiting for it share that read instead of all going to the database
        pending = self._status_reads.get(user_id)
        if pending is None:
            pending = asyncio.ensure_future(self._read_status(user_id, refresh=False))
            self._status_reads[user_id] = pending
            pending.add_done_callback(lambda done: self._status_read_done(user_id, done))
        return await asyncio.shield(pending)

    async def _read_status(self, user_id: str, refresh: bool) -> StatusView:
        ticket = self.status_cache.ticket()
        row, cursors = await store.load_for_status(user_id)
        view = await self._session_status(row, refresh)
        view = replace(view, sync={cursor.kind.value: {
            "last_success_at": cursor.last_success_at,
            "next_sync_at": cursor.next_sync_at,
            "backoff_until": cursor.backoff_until,
            "last_error": cursor.last_error,
        } for cursor in cursors})
        if view.checked in ("cached", "none"):
            self.status_cache.put(user_id, view, ticket, self._unchanged_for(view))
        return view

    def _unchanged_for(self, view: StatusView) -> float | None:
        """Seconds until the clock alone changes this answer (validation or MFA running out)."""
        now = self._clock()
        ends = []
        if view.checked == "cached" and view.last_validated is not None:
            ttl = timedelta(seconds=self._config.status.validation_ttl_seconds)
            ends.append(view.last_validated + ttl)
        if view.mfa_expires_at is not None:
            ends.append(view.mfa_expires_at)
        return min((end - now).total_seconds() for end in ends) if ends else None

    async def _session_status(self, row: GarminAuthenticationState | None,
                              refresh: bool) -> StatusView:
        """Answer from the database while the last validation is fresh; else check Garmin.

        Health probes call this, so concurrent live checks of one user share one Garmin
        call instead of stampeding it when the cache runs out.
        """
        if row is None or not row.session_data:
            return self._view(row, "none")
        user_id = row.user_id
        ttl = timedelta(seconds=self._config.status.validation_ttl_seconds)
        fresh = row.last_validated is not None and self._clock() - row.last_validated < ttl
        if fresh and not refresh:
            return self._view(row, "cached")
        if self.throttle.holds(user_id):
            return self._view(row, "unavailable")
        pending = self._live_checks.get(user_id)
        if pending is None:
            pending = asyncio.ensure_future(self._live_check(row))
            self._live_checks[user_id] = pending
            pending.add_done_callback(lambda done: self._live_check_done(user_id, done))
        return await asyncio.shield(pending)

    async def close(self) -> None:
        """Cancel the live checks still running (at shutdown, before the database closes);
        each writes back a session it refreshed before it ends."""
        checks = list(self._live_checks.values())
        for check in checks:
            check.cancel()
        await asyncio.gather(*checks, return_exceptions=True)

    def _live_check_done(self, user_id: str, done: asyncio.Future[StatusView]) -> None:
        self._live_checks.pop(user_id, None)
        self.status_cache.forget(user_id)  # the check wrote last_validated, or expired it
        _retrieve(done)

    def _status_read_done(self, user_id: str, done: asyncio.Future[StatusView]) -> None:
        self._status_reads.pop(user_id, None)
        _retrieve(done)

    async def _live_check(self, seen: GarminAuthenticationState) -> StatusView:
        lease = await self._wait_for_lease(seen.user_id)
        if lease is None:  # a job, login or MFA still uses the session
            return self._view(seen, "unavailable")
        try:
            row = await store.load(seen.user_id)  # what the last holder of the lease left
            if row is None or not row.session_data:
                return self._view(row, "live")
            return await self._validate(row, lease)
        finally:
            await self._leases.release(lease)

    async def _wait_for_lease(self, user_id: str) -> Lease | None:
        """The user's lease, waited for while a job, login or MFA (here or on another
        replica, hence polled) holds it, at most `LEASE_WAIT_SECONDS`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LEASE_WAIT_SECONDS
        pause = 0.05
        while (lease := await self._leases.acquire(user_id, "status")) is None:
            if loop.time() + pause > deadline:
                return None
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.5)
        return lease

    async def _validate(self, row: GarminAuthenticationState, lease: Lease) -> StatusView:
        user_id = row.user_id
        assert row.session_data is not None
        try:
            session = self._vault.open(user_id, SESSION, row.session_data)
        except DecryptionError as exc:
            log.error("user %s: stored session cannot be decrypted (%s)", user_id, exc)
            view = self._view(row, "live")
            return StatusView(SessionStatus.EXPIRED, "live", view.last_validated,
                              view.connected_at, view.mfa_pending, view.mfa_expires_at,
                              "stored session cannot be decrypted; log in again", view.engine)
        try:
            try:
                await self._gateway.validate(user_id, session,
                                             functools.partial(self._vault.write_back, row))
            except AuthRejected:
                # a rotated refresh token another use already replaced: go on with the newer
                newer = await self._vault.moved_on(row)
                if newer is None:
                    raise
                # the newer session may be refreshed in turn: only by the lease's holder
                if not await self._leases.renew(lease):
                    return self._view(newer[0], "unavailable")
                row, session = newer
                await self._gateway.validate(user_id, session,
                                             functools.partial(self._vault.write_back, row))
        except AuthRejected as exc:
            return await self._expire(row, exc.detail)
        except GarminError as exc:
            log.warning("user %s: validation unavailable: %s", user_id, exc.detail)
            if isinstance(exc, RateLimited):
                self.throttle.start(user_id, exc.retry_after)
            return self._view(row, "unavailable")
        # a refresh was written back already (`row` then holds its version)
        if not await store.compare_and_set(row, last_validated=self._clock(),
                                           status=SessionStatus.VALID, status_reason=None):
            log.info("user %s: session changed during validation; keeping the newer one",
                     user_id)
            return self._view(await store.load(user_id), "live")
        return self._view(row, "live")

    async def _expire(self, row: GarminAuthenticationState, reason: str) -> StatusView:
        """Garmin rejected the session for good: clear it, unless a new login replaced it
        (`session.expired` is written with the expiry, by whichever check made it)."""
        event = events.session_expired(row.user_id, self._clock(), reason)
        emitted: list[str | None] = []

        async def report(connection: BaseDBAsyncClient) -> None:
            emitted.append(await self._outbox.emit(connection, event))

        if await self._vault.expire(row, reason, report):
            self._outbox.committed(*emitted)
            return self._view(row, "live")
        return self._view(await store.load(row.user_id), "live")


def _retrieve(shared: asyncio.Future[Any]) -> None:
    """Mark a shared read's failure as seen: every request that waited for it got it already,
    or went away, and asyncio would otherwise log it as never retrieved."""
    if not shared.cancelled():
        shared.exception()
