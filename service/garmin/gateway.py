"""The async face of the Garmin adapter: every garth call runs in one bounded thread pool.

garth is synchronous (requests); calling it on the event loop would stall every request of
the process. The pool size (`garmin.executor_threads`) bounds how many Garmin calls run at
once, which is also the most concurrent load one replica puts on Garmin.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from service.garmin import client as garth_adapter
from service.garmin.client import GarminApi, GarminSettings, LoginResult, Usage

T = TypeVar("T")


class GarminGateway:
    """Login, MFA and session use for one app instance, on its own thread pool."""

    def __init__(self, settings: GarminSettings, threads: int) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="garmin")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def login(self, user_id: str, username: str, password: str) -> LoginResult:
        return await self._run(garth_adapter.login, self.settings, user_id, username, password)

    async def resume_mfa(self, user_id: str, mfa_state: str, code: str) -> str:
        return await self._run(garth_adapter.resume_mfa, self.settings, user_id, mfa_state, code)

    async def validate(self, user_id: str, session: str) -> Usage[dict[str, Any]]:
        return await self._run(garth_adapter.validate, self.settings, user_id, session)

    async def use(
        self, user_id: str, session: str, work: Callable[[GarminApi], T]
    ) -> Usage[T]:
        """Run `work` (synchronous, in the pool) with the user's loaded session."""
        return await self._run(garth_adapter.use_session, self.settings, user_id, session, work)

    def close(self) -> None:
        """Stop taking work; threads finish their current Garmin call in the background."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def configure_consumer(key: str, secret: str) -> None:
    garth_adapter.configure_consumer(key, secret)
