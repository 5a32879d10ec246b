"""Login cooldowns per Garmin account, honoured by every user id and every replica.

Garmin throttles sign-ins per Garmin account, and a sign-in retried during the block
re-arms it. So after Garmin answers a login with a rate limit (a 429 or 427, from either
engine), no login to that account reaches Garmin for `max(Retry-After,
login.cooldown_seconds)`, whichever user id asks: two calling-service users sharing one
Garmin account, or one user who disconnected (deleting their row) and logs in again, all
wait. A login checks its account before any Garmin request, and so does the code step of a
login that needed MFA (its challenge names the account; a rate limit there starts the
cooldown too). Two logins to one account that start together may both reach Garmin: the
cooldown starts with Garmin's first rate-limit answer.

Accounts are named by a keyed hash, never by the username: HMAC-SHA256 of the normalised
username (Unicode NFKC, surrounding whitespace stripped, case folded, so ``Alice@x.com ``
and ``alice@x.com`` are one account) under a key derived from the encryption keys
(`Cipher.derived_keys`), so neither the table nor a log line tells which accounts exist,
and without the key a guessed address cannot be checked against it.

Key rotation: a login looks its account up under every configured key and a cooldown is
written under the current one. Putting a new key first keeps the running cooldowns (found
under the old key while it stays configured); removing the old key forgets the cooldowns
written under it. They last minutes (`login.cooldown_seconds`, or Garmin's Retry-After), so
the cost is at most one login that reaches Garmin while its block still runs; remove an
old key at least that long after the new one went first to lose none.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta

from service.clock import Now
from service.errors import LoginCooldown
from service.store import cooldowns as store

PURPOSE = "garmin account login cooldowns"


def normalised(username: str) -> str:
    """The account a username names, as Garmin compares it (its sign-in is by e-mail)."""
    return unicodedata.normalize("NFKC", username).strip().casefold()


def wait_seconds(until: datetime, now: datetime) -> int:
    """Whole seconds a caller waits (Retry-After), rounded up: never 0 while a cooldown
    runs."""
    return max(1, math.ceil((until - now).total_seconds()))


class AccountCooldowns:
    """Checks and starts the cooldowns of Garmin accounts (keys: `Cipher.derived_keys`)."""

    def __init__(self, keys: Sequence[bytes], clock: Now) -> None:
        if not keys:
            raise ValueError("at least one key is required")
        self._keys = list(keys)
        self._clock = clock

    def names(self, username: str) -> list[str]:
        """The account's name under each configured key, the current key's first."""
        account = normalised(username).encode()
        return [hmac.new(key, account, hashlib.sha256).hexdigest() for key in self._keys]

    async def check(self, username: str) -> None:
        """Raise `LoginCooldown` while the account cools down; no Garmin request then."""
        await self._check(self.names(username))

    async def check_named(self, name: str) -> None:
        """`check` for an account known by its name (an MFA challenge's `mfa_account`)."""
        await self._check([name])

    async def start(self, username: str, seconds: int) -> None:
        """The account cools down `seconds` from now (a running longer one is kept)."""
        await self.start_named(self.names(username)[0], seconds)

    async def start_named(self, name: str, seconds: int) -> None:
        now = self._clock()
        await store.extend(name, now + timedelta(seconds=seconds), now)

    async def _check(self, names: list[str]) -> None:
        now = self._clock()
        until = await store.until(names, now)
        if until is not None:
            raise LoginCooldown(wait_seconds(until, now))
