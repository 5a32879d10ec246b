"""The encrypted session at rest: sealing, and the two writes every session user makes.

Both the status check and sync jobs follow Load-Use-Update; they share this one home for
"write back a refreshed session unless a newer login replaced it" and "Garmin rejected the
session: clear it and stop scheduling".
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tortoise.backends.base.client import BaseDBAsyncClient

from service.crypto import Cipher, DecryptionError
from service.models import GarminAuthenticationState, SessionStatus
from service.store import sessions as store
from service.store import sql
from service.store import sync as sync_store

if TYPE_CHECKING:
    from service.metrics import Metrics

log = logging.getLogger(__name__)

# a write the caller adds to a change's transaction (the event that reports it)
InTransaction = Callable[[BaseDBAsyncClient], Awaitable[object]]

SESSION = "session_data"
MFA = "mfa_state"


class SessionVault:
    """Sealing, and the session writes of every use. With metrics, counts the refreshes
    written back and the stale copies dropped (sync jobs and live checks alike)."""

    def __init__(self, cipher: Cipher, metrics: Metrics | None = None) -> None:
        self._cipher = cipher
        self._metrics = metrics

    def seal(self, user_id: str, purpose: str, plaintext: str) -> str:
        return self._cipher.encrypt(plaintext, user_id=user_id, purpose=purpose)

    def open(self, user_id: str, purpose: str, sealed: str) -> str:
        """Raises `DecryptionError` for another user's, another field's or an unknown key's
        ciphertext: the caller treats that as "log in again"."""
        return self._cipher.decrypt(sealed, user_id=user_id, purpose=purpose)

    async def write_back(self, row: GarminAuthenticationState, session: str) -> bool:
        """Persist a refreshed session with compare-and-set on the version read at Load.

        False when another write (a login) came first: the newer session stays. The gateway
        calls this (`GarminGateway.use`) before the use ends, cancelled or not; on success
        `row` holds the new version.
        """
        if await store.compare_and_set(row, session_data=self.seal(row.user_id, SESSION,
                                                                   session)):
            if self._metrics is not None:
                self._metrics.refresh_persisted()
            return True
        log.info("user %s: session changed while in use; dropped the stale copy", row.user_id)
        if self._metrics is not None:
            self._metrics.stale_session_dropped()
        return False

    async def moved_on(self, row: GarminAuthenticationState,
                       ) -> tuple[GarminAuthenticationState, str] | None:
        """After Garmin rejected a session: the stored one, if it moved on since `row` was read.

        DI refresh tokens rotate, so a refresh answered `invalid_grant` may only mean that
        another use refreshed first and wrote the new token back; the newer row and its
        session are then the ones to go on with. None when the row still holds what we
        used: the rejection is definitive.
        """
        current = await store.load(row.user_id)
        if current is None or current.version == row.version or not current.session_data:
            return None
        try:
            session = self.open(row.user_id, SESSION, current.session_data)
        except DecryptionError:
            return None
        log.info("user %s: session rejected but a newer one was stored; using it", row.user_id)
        return current, session

    async def expire(self, row: GarminAuthenticationState, reason: str,
                     then: InTransaction | None = None) -> bool:
        """Garmin rejected the session for good: clear it and pause scheduled syncs.

        False when a new login, or another replica's expiry, changed the row meanwhile (it
        keeps its state). Only the write that expired the row runs `then` (the
        `session.expired` event), inside the same transaction: one event per expiry.
        """
        async with sql.transaction(GarminAuthenticationState) as connection:
            if not await store.compare_and_set(row, connection, session_data=None,
                                               status=SessionStatus.EXPIRED,
                                               status_reason=reason[:200]):
                return False
            await sync_store.pause_cursors(row.user_id, "Garmin session expired", connection)
            if then is not None:
                await then(connection)
        log.warning("user %s: Garmin rejected the session (%s)", row.user_id, reason)
        return True
