"""Waiting for a condition: tests poll what they expect, never sleep for a fixed time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")

INTERVAL = 0.02


@overload
async def eventually(condition: Callable[[], Awaitable[T | None]], timeout: float = ...,
                     what: str = ..., *, interval: float = ...,
                     alive: Callable[[], None] | None = ...) -> T: ...


@overload
async def eventually(condition: Callable[[], T | None], timeout: float = ...,
                     what: str = ..., *, interval: float = ...,
                     alive: Callable[[], None] | None = ...) -> T: ...


async def eventually(condition: Callable[[], object], timeout: float = 10,
                     what: str = "the condition", *, interval: float = INTERVAL,
                     alive: Callable[[], None] | None = None) -> object:
    """Poll `condition` (a plain or async callable) until it returns something truthy, and
    return that; after `timeout` seconds fail with an AssertionError naming `what`.

    `alive` runs before every poll and raises to stop early (a process that died, say). An
    exception raised by the condition itself ends the wait at once, so a condition may also
    assert an invariant that must hold while waiting.
    """
    try:
        async with asyncio.timeout(timeout) as scope:
            while True:
                if alive is not None:
                    alive()
                result = condition()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return result
                await asyncio.sleep(interval)
    except TimeoutError:
        if not scope.expired():
            raise  # the condition's own timeout, not ours
        raise AssertionError(f"timed out after {timeout:g}s waiting for {what}") from None
