"""What a job may do with a loaded session, whichever engine loaded it.

The data endpoints (`service.garmin.endpoints`) are written against `SessionCalls`; the
gateway builds one for each use of a stored session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from service.garmin.engine import LoadedSession


class SessionCalls:
    """What a job may do with a loaded session: the user's authenticated Garmin Connect GETs,
    awaited on the event loop and run in the gateway's pool, at most `parallel` at once."""

    def __init__(self, api: LoadedSession, parallel: int,
                 background: asyncio.Semaphore | None,
                 run: Callable[..., Awaitable[Any]]) -> None:
        self._api = api
        self._parallel = asyncio.Semaphore(max(parallel, 1))
        self._background = background
        self._run = run
        self.made = 0  # calls started, failed ones included (the job's log line counts them)

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        async with self._parallel:
            self.made += 1
            if self._background is None:
                return await self._run(self._api.get, path, params)
            async with self._background:
                return await self._run(self._api.get, path, params)
