"""Per-user mutual exclusion inside one process.

A user's login, MFA, disconnect and sync never run at the same time in this process; a
second caller is told "busy" at once instead of queueing behind a slow Garmin call.
Across replicas the `version` compare-and-set keeps writes safe.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class UserLocks:
    """Try-locks keyed by user id; a held set, since asyncio code runs one step at a time."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    def is_held(self, user_id: str) -> bool:
        return user_id in self._held

    @asynccontextmanager
    async def hold(self, user_id: str) -> AsyncIterator[bool]:
        """Yields True with the lock held, or False (without it) when the user is busy."""
        if user_id in self._held:
            yield False
            return
        self._held.add(user_id)
        try:
            yield True
        finally:
            self._held.discard(user_id)
