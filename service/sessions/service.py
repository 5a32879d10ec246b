"""Connect, finish MFA and disconnect a user's Garmin session (its status: `status`).

A user's own actions never overlap, with each other nor with a sync job, on any replica:
each holds the user's lease. A new login's session is written with compare-and-set unless a
login that started later already finished, and makes the user's syncs due again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from service.clock import SYSTEM_CLOCK, Clock
from service.config import Config
from service.crypto import Cipher, DecryptionError
from service.errors import (
    InvalidGarminCredentials,
    LoginCooldown,
    MfaExpired,
    MfaUnreadable,
    NoPendingMfa,
    Problem,
    UserBusy,
    WriteConflict,
    WrongMfaCode,
)
from service.garmin import (
    GarminError,
    GarminGateway,
    InvalidCredentials,
    MfaChallengeLost,
    MfaCodeInvalid,
    RateLimited,
    engine_of,
)
from service.models import GarminAuthenticationState, SessionStatus
from service.sessions.cooldowns import PURPOSE as COOLDOWNS
from service.sessions.cooldowns import AccountCooldowns, wait_seconds
from service.sessions.status import StatusChecks
from service.store import sessions as store
from service.store import sql
from service.store import sync as sync_store
from service.store.leases import UserLeases
from service.store.vault import MFA, SESSION, SessionVault
from service.webhooks import events
from service.webhooks.config import WebhooksConfig
from service.webhooks.outbox import Outbox

if TYPE_CHECKING:
    from service.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginOutcome:
    status: Literal["SUCCESS", "MFA_REQUIRED"]
    mfa_method: str | None = None
    expires_at: datetime | None = None


class SessionService(StatusChecks):
    """The use cases behind `/api/v1/garmin/session/*`."""

    def __init__(
        self,
        config: Config,
        gateway: GarminGateway,
        cipher: Cipher,
        leases: UserLeases,
        clock: Clock = SYSTEM_CLOCK,
        outbox: Outbox | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        super().__init__(config, gateway, SessionVault(cipher, metrics), clock, leases,
                         outbox or Outbox(WebhooksConfig()))
        self._cooldowns = AccountCooldowns(cipher.derived_keys(COOLDOWNS), clock.now)

    # --- helpers ------------------------------------------------------------------------

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
        return {"mfa_pending": False, "mfa_state": None, "mfa_engine": None, "mfa_account": None,
                "mfa_expires_at": None, "mfa_attempts": 0}

    # --- login --------------------------------------------------------------------------

    async def login(self, user_id: str, username: str, password: str) -> LoginOutcome:
        outcome: LoginOutcome = await self._exclusive(
            user_id, "login", lambda: self._login(user_id, username, password)
        )
        return outcome

    def _refuse_while_cooling_down(self, row: GarminAuthenticationState) -> None:
        """A per-user cooldown, which only replicas of the previous release still write."""
        now = self._clock()
        if row.login_cooldown_until and row.login_cooldown_until > now:
            raise LoginCooldown(wait_seconds(row.login_cooldown_until, now))

    async def _login(self, user_id: str, username: str, password: str) -> LoginOutcome:
        await self._cooldowns.check(username)
        row = await store.load_or_create(user_id)
        now = self._clock()
        self._refuse_while_cooling_down(row)
        try:
            result = await self._gateway.login(user_id, username, password)
        except RateLimited as exc:
            raise await self._throttled(user_id, self._cooldowns.names(username)[0], exc
                                        ) from None
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
        # `engine` stays the stored session's: only a session written names it
        await self._write_latest(
            row, mfa_pending=True, mfa_attempts=0, mfa_expires_at=expires_at,
            mfa_state=self._vault.seal(user_id, MFA, result.mfa_state),
            mfa_engine=engine_of(result.mfa_state),
            mfa_account=self._cooldowns.names(username)[0])
        log.info("user %s login needs MFA (%s)", user_id, result.mfa_method)
        return LoginOutcome("MFA_REQUIRED", result.mfa_method, expires_at)

    async def _throttled(self, user_id: str, account: str | None,
                         exc: RateLimited) -> Problem:
        """Garmin rate-limited a sign-in: the account cools down, and the caller is told how
        long (`max(Retry-After, login.cooldown_seconds)`)."""
        cooldown = max(exc.retry_after or 0, self._config.login.cooldown_seconds)
        if account is not None:
            await self._cooldowns.start_named(account, cooldown)
        log.warning("sign-in for user %s throttled by Garmin; the account cools down %ss",
                    user_id, cooldown)
        exc.retry_after = cooldown
        return exc.problem()

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
        changes = {"session_data": self._vault.seal(row.user_id, SESSION, session),
                   "engine": engine_of(session), "status": SessionStatus.VALID,
                   "status_reason": None,
                   "connected_at": started, "last_validated": self._clock(),
                   "login_cooldown_until": None, **self._mfa_cleared()}
        for _ in range(5):
            async with sql.transaction(GarminAuthenticationState) as connection:
                if await store.compare_and_set(row, connection, **changes):
                    await sync_store.resume_cursors(row.user_id, self._clock(),
                                                    self._config.sync.initial_spread_seconds,
                                                    connection)
                    emitted = await self._outbox.emit(connection, events.session_connected(
                        row.user_id, self._clock(), engine_of(session)))
                    written = True
                else:
                    written = False
            if written:
                self._outbox.committed(emitted)
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
        self._refuse_while_cooling_down(row)  # the challenge stays until it expires
        try:
            mfa_state = self._vault.open(user_id, MFA, row.mfa_state)
        except DecryptionError:
            await store.compare_and_set(row, **self._mfa_cleared())
            raise MfaUnreadable() from None
        if row.mfa_account:
            await self._cooldowns.check_named(row.mfa_account)
        started = self._clock()
        try:
            session = await self._gateway.resume_mfa(user_id, mfa_state, code)
        except MfaCodeInvalid as exc:
            await self._wrong_mfa_code(row, exc.mfa_state, exc.codes_posted or 1)
        except MfaChallengeLost:
            await store.compare_and_set(row, **self._mfa_cleared())
            raise MfaExpired("Garmin no longer accepts this MFA challenge; log in again.") from None
        except RateLimited as exc:  # no verdict on the code: the challenge stays
            await self._count_codes(row, exc.codes_posted)
            raise await self._throttled(user_id, row.mfa_account, exc) from None
        except GarminError as exc:  # a 5xx, a timeout: no verdict, the challenge stays
            await self._count_codes(row, exc.codes_posted)
            raise exc.problem() from None
        else:
            await self._store_new_session(row, session, started=started)
            log.info("user %s finished MFA and connected a Garmin session", user_id)

    async def _count_codes(self, row: GarminAuthenticationState, codes_posted: int | None) -> None:
        """An attempt that ended without Garmin's verdict still counts the codes it posted:
        Garmin may have seen them. With no attempts left the challenge goes, as after the
        last wrong code."""
        if not codes_posted:
            return
        attempts = row.mfa_attempts + codes_posted
        if attempts >= self._config.mfa.max_attempts:
            await store.compare_and_set(row, **self._mfa_cleared())
            log.info("user %s: the pending MFA login has no attempts left", row.user_id)
        else:
            await store.compare_and_set(row, mfa_attempts=attempts)

    async def _wrong_mfa_code(self, row: GarminAuthenticationState, new_state: str | None,
                              codes_posted: int) -> None:
        """Count the codes Garmin saw (the DI engine may post one code twice), not our
        requests: `mfa.max_attempts` then stops before Garmin's own limit does."""
        attempts = row.mfa_attempts + max(codes_posted, 1)
        remaining = self._config.mfa.max_attempts - attempts
        if remaining <= 0:
            await store.compare_and_set(row, **self._mfa_cleared())
            raise WrongMfaCode(attempts_remaining=0)
        changes: dict[str, Any] = {"mfa_attempts": attempts}
        if new_state:
            changes["mfa_state"] = self._vault.seal(row.user_id, MFA, new_state)
        await store.compare_and_set(row, **changes)
        raise WrongMfaCode(attempts_remaining=remaining)

    # --- disconnect ---------------------------------------------------------------------

    async def disconnect(self, user_id: str) -> None:
        async def remove() -> None:
            emitted = None
            async with sql.transaction(GarminAuthenticationState) as connection:
                await sync_store.pause_cursors(user_id, "disconnected", connection)
                if await store.delete(user_id, connection):
                    emitted = await self._outbox.emit(
                        connection, events.session_disconnected(user_id, self._clock()))
                    log.info("user %s disconnected their Garmin session", user_id)
            self._outbox.committed(emitted)

        await self._exclusive(user_id, "disconnect", remove)
