"""Recent status answers per user, so a per-user health probe costs no database round trip.

Callers poll `GET /session/status` for every user they hold, often from several pods at
once. Answering a repeated poll from memory keeps that traffic off the database. An entry
lives `ttl` seconds at most and never past the moment the answer would change by the clock
alone (the validation going stale, an MFA challenge expiring). Writes made through this
process drop the user's entry at once; writes made on another replica show within `ttl`.
"""

from __future__ import annotations

import time
from typing import Generic, TypeVar

from service.clock import Monotonic

V = TypeVar("V")


class StatusCache(Generic[V]):
    """A bounded map user id -> (answer, expiry); the oldest entries go first when full."""

    def __init__(self, ttl: float, max_entries: int,
                 clock: Monotonic = time.monotonic) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[V, float]] = {}
        self._writes = 0

    @property
    def enabled(self) -> bool:
        return self._ttl > 0 and self._max > 0

    def get(self, user_id: str) -> V | None:
        entry = self._entries.get(user_id)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            self._entries.pop(user_id, None)
            return None
        return entry[0]

    def ticket(self) -> int:
        """Taken before reading the database: `put` drops an answer read before a write."""
        return self._writes

    def put(self, user_id: str, value: V, ticket: int, valid_for: float | None = None) -> None:
        """Keep `value` for at most `ttl` (or `valid_for`, when sooner) seconds.

        Ignored when any write was forgotten since `ticket` was taken: the answer may
        predate that write, and a stale answer must not outlive the write that replaced it.
        """
        if not self.enabled or ticket != self._writes:
            return
        lifetime = self._ttl if valid_for is None else min(self._ttl, valid_for)
        if lifetime <= 0:
            return
        self._entries.pop(user_id, None)
        while len(self._entries) >= self._max:
            self._entries.pop(next(iter(self._entries)))
        self._entries[user_id] = (value, self._clock() + lifetime)

    def forget(self, user_id: str) -> None:
        """The user's stored state changed here: the next status reads the database."""
        self._writes += 1
        self._entries.pop(user_id, None)

    def __len__(self) -> int:
        return len(self._entries)
