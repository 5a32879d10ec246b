"""The service's two readings of time, injected wherever an answer depends on them.

`now()` is wall-clock UTC: what is stored, and compared with what is stored (validation,
MFA and cooldown expiries, leases, cursors). `monotonic()` measures intervals that live only
in memory (the status cache, the pause after a Garmin 429) and never jumps when the wall
clock is set. One `Clock` per app (`create_app(config, clock)`) hands both to every service,
so a test moves time by advancing a `ManualClock` instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Now = Callable[[], datetime]
Monotonic = Callable[[], float]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """The system's clocks (static: reading one costs no extra call on the hot paths)."""

    now: Now = staticmethod(utcnow)
    monotonic: Monotonic = staticmethod(time.monotonic)


SYSTEM_CLOCK = Clock()


class ManualClock(Clock):
    """A clock that moves only when told, both readings together."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or utcnow()
        self._elapsed = 0.0
        self.now = self._read_now
        self.monotonic = self._read_monotonic

    def _read_now(self) -> datetime:
        return self._now

    def _read_monotonic(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._elapsed += seconds
