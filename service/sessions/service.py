"""Connect, finish MFA, check and disconnect a user's Garmin session.

Load-Use-Update for every Garmin call that uses a stored session: load the row and its
version, use a fresh client in the thread pool, write back a refreshed session with
compare-and-set. A definitive rejection clears the session (EXPIRED); a transient failure
changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from service.clock import SYSTEM_CLOCK, Clock, Monotonic
from service.config import Config
from service.crypto import Cipher, DecryptionError
from service.errors import (
    InvalidGarminCredentials,
    LoginCooldown,
    MfaExpired,
    MfaUnreadable,
    NoPendingMfa,
    UserBusy,
    WriteConflict,
    WrongMfaCode,
)
from service.garmin import (
    AuthRejected,
    GarminError,
    GarminGateway,
    InvalidCredentials,
    MfaChallengeLost,
    MfaCodeInvalid,
    RateLimited,
)
from service.models import GarminAuthenticationState, SessionStatus, mfa_live, status_of
from service.sessions.status_cache import StatusCache
from service.store import sessions as store
from service.store import sync as sync_store
from service.store.leases import UserLeases
from service.store.vault import MFA, SESSION, SessionVault

log = logging.getLogger(__name__)


Checked = Literal["live", "cached", "unavailable", "none"]


@dataclass(frozen=True)
class LoginOutcome:
    status: Literal["SUCCESS", "MFA_REQUIRED"]
    mfa_method: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, eq=False)  # compared by identity: the API memoizes its JSON
class StatusView:
    status: SessionStatus
    checked: Checked
    last_validated: datetime | None
    connected_at: datetime | None
    mfa_pending: bool
    mfa_expires_at: datetime | None
    reason: str | None
    sync: dict[str, dict[str, Any]] = field(default_factory=dict)


class SessionService:
    """The use cases behind `/api/v1/garmin/session/*`."""

    def __init__(
        self,
        config: Config,
        gateway: GarminGateway,
        cipher: Cipher,
        leases: UserLeases,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._config = config
        self._gateway = gateway
        self._vault = SessionVault(cipher)
        self._leases = leases
        self._clock = clock.now
        self._live_checks: dict[str, asyncio.Future[StatusView]] = {}
        self._status_reads: dict[str, asyncio.Future[StatusView]] = {}
        self.throttle = GarminThrottle(config.login.cooldown_seconds, clock.monotonic)
        self.status_cache: StatusCache[StatusView] = StatusCache(
            config.status.cache_seconds, config.status.cache_max_users, clock.monotonic)

    # --- helpers ------------------------------------------------------------------------

    def _seal(self, user_id: str, purpose: str, plaintext: str) -> str:
        return self._vault.seal(user_id, purpose, plaintext)

    def _open(self, user_id: str, purpose: str, sealed: str) -> str:
        return self._vault.open(user_id, purpose, sealed)

    async def _exclusive(
        self, user_id: str, purpose: str, work: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Login, MFA and disconnect never overlap for one user, nor with a sync job,
        on any replica: they hold the same per-user lease."""
        async with self._leases.hold(user_id, purpose) as lease:
            if lease is None:
                raise UserBusy()
            try:
                return await work()
            finally:
                self.status_cache.forget(user_id)

    def _mfa_cleared(self) -> dict[str, Any]:
        return {"mfa_pending": False, "mfa_state": None, "mfa_expires_at": None,
                "mfa_attempts": 0}

    # --- login --------------------------------------------------------------------------

    async def login(self, user_id: str, username: str, password: str) -> LoginOutcome:
        outcome: LoginOutcome = await self._exclusive(
            user_id, "login", lambda: self._login(user_id, username, password)
        )
        return outcome

    async def _login(self, user_id: str, username: str, password: str) -> LoginOutcome:
        row = await store.load_or_create(user_id)
        now = self._clock()
        if row.login_cooldown_until and row.login_cooldown_until > now:
            wait = int((row.login_cooldown_until - now).total_seconds()) + 1
            raise LoginCooldown(wait)
        try:
            result = await self._gateway.login(user_id, username, password)
        except RateLimited as exc:
            cooldown = max(exc.retry_after or 0, self._config.login.cooldown_seconds)
            until = now + timedelta(seconds=cooldown)
            await store.force_update(user_id, login_cooldown_until=until)
            log.warning("login for user %s throttled by Garmin; cooling down %ss",
                        user_id, cooldown)
            exc.retry_after = cooldown
            raise exc.problem() from None
        except InvalidCredentials:
            raise InvalidGarminCredentials() from None
        except GarminError as exc:
            log.warning("login for user %s failed: %s", user_id, exc.detail)
            raise exc.problem() from None
        if result.session is not None:
            await self._store_new_session(row, result.session, started=now)
            log.info("user %s connected a Garmin session", user_id)
            return LoginOutcome("SUCCESS")
        assert result.mfa_state is not None
        expires_at = self._clock() + timedelta(seconds=self._config.mfa.ttl_seconds)
        await self._write_latest(row, mfa_pending=True, mfa_attempts=0, mfa_expires_at=expires_at,
                                 mfa_state=self._seal(user_id, MFA, result.mfa_state))
        log.info("user %s login needs MFA (%s)", user_id, result.mfa_method)
        return LoginOutcome("MFA_REQUIRED", result.mfa_method, expires_at)

    async def _write_latest(self, row: GarminAuthenticationState, **changes: Any) -> None:
        """Write a user action's result: re-read and retry when only bookkeeping moved on."""
        for _ in range(5):
            if await store.compare_and_set(row, **changes):
                return
            fresh = await store.load(row.user_id)
            if fresh is None:
                fresh = await store.load_or_create(row.user_id)
            row.__dict__.update(fresh.__dict__)
        raise WriteConflict()

    async def _store_new_session(
        self, row: GarminAuthenticationState, session: str, started: datetime
    ) -> None:
        """Persist a new login unless a login that started later already finished."""
        changes = {"session_data": self._seal(row.user_id, SESSION, session),
                   "status": SessionStatus.VALID, "status_reason": None,
                   "connected_at": started, "last_validated": self._clock(),
                   "login_cooldown_until": None, **self._mfa_cleared()}
        for _ in range(5):
            if await store.compare_and_set(row, **changes):
                await sync_store.resume_cursors(row.user_id, self._clock(),
                                                self._config.sync.initial_spread_seconds)
                return
            fresh = await store.load_or_create(row.user_id)
            if fresh.connected_at and fresh.connected_at > started:
                log.info("user %s: a newer login finished first; keeping it", row.user_id)
                return
            row.__dict__.update(fresh.__dict__)
        raise WriteConflict()

    # --- MFA ----------------------------------------------------------------------------

    async def submit_mfa(self, user_id: str, code: str) -> None:
        await self._exclusive(user_id, "mfa", lambda: self._submit_mfa(user_id, code))

    async def _submit_mfa(self, user_id: str, code: str) -> None:
        row = await store.load(user_id)
        if row is None or not row.mfa_pending or not row.mfa_state:
            raise NoPendingMfa()
        if row.mfa_expires_at is None or row.mfa_expires_at <= self._clock():
            await store.compare_and_set(row, **self._mfa_cleared())
            raise MfaExpired()
        try:
            mfa_state = self._open(user_id, MFA, row.mfa_state)
        except DecryptionError:
            await store.compare_and_set(row, **self._mfa_cleared())
            raise MfaUnreadable() from None
        started = self._clock()
        try:
            session = await self._gateway.resume_mfa(user_id, mfa_state, code)
        except MfaCodeInvalid as exc:
            await self._wrong_mfa_code(row, exc.mfa_state)
        except MfaChallengeLost:
            await store.compare_and_set(row, **self._mfa_cleared())
            raise MfaExpired("Garmin no longer accepts this MFA challenge; log in again.") from None
        except GarminError as exc:
            raise exc.problem() from None
        else:
            await self._store_new_session(row, session, started=started)
            log.info("user %s finished MFA and connected a Garmin session", user_id)

    async def _wrong_mfa_code(self, row: GarminAuthenticationState, new_state: str | None) -> None:
        attempts = row.mfa_attempts + 1
        remaining = self._config.mfa.max_attempts - attempts
        if remaining <= 0:
            await store.compare_and_set(row, **self._mfa_cleared())
            raise WrongMfaCode(attempts_remaining=0)
        changes: dict[str, Any] = {"mfa_attempts": attempts}
        if new_state:
            changes["mfa_state"] = self._seal(row.user_id, MFA, new_state)
        await store.compare_and_set(row, **changes)
        raise WrongMfaCode(attempts_remaining=remaining)

    # --- status -------------------------------------------------------------------------

    def _view(self, row: GarminAuthenticationState | None, checked: Checked) -> StatusView:
        if row is None:
            return StatusView(SessionStatus.MISSING, "none", None, None, False, None, None)
        now = self._clock()
        waiting = mfa_live(row, now)
        return StatusView(status_of(row, now), checked if row.session_data else "none",
                          row.last_validated, row.connected_at, waiting,
                          row.mfa_expires_at if waiting else None, row.status_reason)

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

    def _live_check_done(self, user_id: str, done: asyncio.Future[StatusView]) -> None:
        self._live_checks.pop(user_id, None)
        self.status_cache.forget(user_id)  # the check wrote last_validated, or expired it
        _retrieve(done)

    def _status_read_done(self, user_id: str, done: asyncio.Future[StatusView]) -> None:
        self._status_reads.pop(user_id, None)
        _retrieve(done)

    async def _live_check(self, row: GarminAuthenticationState) -> StatusView:
        user_id = row.user_id
        assert row.session_data is not None
        try:
            session = self._open(user_id, SESSION, row.session_data)
        except DecryptionError as exc:
            log.error("user %s: stored session cannot be decrypted (%s)", user_id, exc)
            view = self._view(row, "live")
            return StatusView(SessionStatus.EXPIRED, "live", view.last_validated,
                              view.connected_at, view.mfa_pending, view.mfa_expires_at,
                              "stored session cannot be decrypted; log in again")
        try:
            usage = await self._gateway.validate(user_id, session)
        except AuthRejected as exc:
            return await self._expire(row, exc.detail)
        except GarminError as exc:
            log.warning("user %s: validation unavailable: %s", user_id, exc.detail)
            if isinstance(exc, RateLimited):
                self.throttle.start(user_id, exc.retry_after)
            if exc.refreshed_session:
                await self._vault.write_back(row, exc.refreshed_session)
            return self._view(row, "unavailable")
        changes: dict[str, Any] = {"last_validated": self._clock(),
                                   "status": SessionStatus.VALID, "status_reason": None}
        if usage.refreshed_session:
            changes["session_data"] = self._seal(user_id, SESSION, usage.refreshed_session)
        if not await store.compare_and_set(row, **changes):
            log.info("user %s: session changed during validation; keeping the newer one",
                     user_id)
            return self._view(await store.load(user_id), "live")
        return self._view(row, "live")

    async def _expire(self, row: GarminAuthenticationState, reason: str) -> StatusView:
        """Garmin rejected the session for good: clear it, unless a new login replaced it."""
        if await self._vault.expire(row, reason):
            return self._view(row, "live")
        return self._view(await store.load(row.user_id), "live")

    # --- disconnect ---------------------------------------------------------------------

    async def disconnect(self, user_id: str) -> None:
        async def remove() -> None:
            await sync_store.pause_cursors(user_id, "disconnected")
            if await store.delete(user_id):
                log.info("user %s disconnected their Garmin session", user_id)

        await self._exclusive(user_id, "disconnect", remove)


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


def _retrieve(shared: asyncio.Future[Any]) -> None:
    """Mark a shared read's failure as seen: every request that waited for it got it already,
    or went away, and asyncio would otherwise log it as never retrieved."""
    if not shared.cancelled():
        shared.exception()
