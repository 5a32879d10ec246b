"""Uses of a stored session as tests drive them: a write-back that only records, and Garmin
calls held in their pool thread until the test lets them go."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from service.garmin import WriteBack
from service.garmin.di.session import DiSession


def written_to(sessions: list[str]) -> WriteBack:
    """A write-back that keeps each refreshed session in `sessions` (and stores nothing)."""

    async def write(session: str) -> bool:
        sessions.append(session)
        return True

    return write


class HeldCall:
    """The first DI call of the user `caller` stops in its pool thread, `before` the real
    call (which then refreshes only once let go) or after it (its refresh done), until
    `release()`. Every other call runs as usual."""

    def __init__(self, caller: str, before: bool) -> None:
        self.caller = caller
        self.before = before
        self.reached = threading.Event()  # the call is held now
        self._go = threading.Event()
        self._taken = False
        self._lock = threading.Lock()

    def release(self) -> None:
        self._go.set()

    def _mine(self, session: DiSession) -> bool:
        with self._lock:
            if self._taken or session._caller != self.caller:
                return False
            self._taken = True
            return True

    def _hold(self) -> None:
        self.reached.set()
        if not self._go.wait(timeout=60):  # a test that never lets go fails, not hangs
            raise AssertionError("a held Garmin call was never released")

    def around(self, get: Callable[..., Any]) -> Callable[..., Any]:
        def held_get(session: DiSession, path: str, params: dict[str, Any] | None = None,
                     ) -> Any:
            if not self._mine(session):
                return get(session, path, params)
            if self.before:
                self._hold()
                return get(session, path, params)
            try:
                return get(session, path, params)
            finally:
                self._hold()

        return held_get


@contextmanager
def held_call(monkeypatch: pytest.MonkeyPatch, caller: str, before: bool,
              ) -> Iterator[HeldCall]:
    """Hold the next DI call of `caller` (see `HeldCall`); let go at the end in any case."""
    held = HeldCall(caller, before)
    monkeypatch.setattr(DiSession, "get", held.around(DiSession.get))
    try:
        yield held
    finally:
        held.release()
