"""Hypothesis against the running app: properties drawn in a worker thread, requests made
on the test's event loop (where the app and its database connections live)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CALL_TIMEOUT = 30


async def check_property(prop: Callable[..., Awaitable[None]], *, max_examples: int,
                         **strategies: st.SearchStrategy[Any]) -> None:
    """Run `prop` for `max_examples` draws of `strategies` (seeded: the same draws each
    run), shrinking a failing draw to its smallest form."""
    loop = asyncio.get_running_loop()

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(**strategies)
    def run(**drawn: Any) -> None:
        asyncio.run_coroutine_threadsafe(prop(**drawn), loop).result(CALL_TIMEOUT)

    await asyncio.to_thread(run)
