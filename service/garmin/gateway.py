"""The async face of the Garmin adapter: every garth call runs in one bounded thread pool.

garth is synchronous (requests); calling it on the event loop would stall every request of
the process. The pool size (`garmin.executor_threads`) bounds how many Garmin calls run at
once, which is also the most concurrent load one replica puts on Garmin.

With metrics, each call is timed in its thread and counted by operation and outcome, and the
gateway keeps how many calls run (`busy_threads`) and wait for a thread (`queue_depth`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from service.garmin import client as garth_adapter
from service.garmin.client import GarminApi, GarminSettings, LoginResult, Transport, Usage

if TYPE_CHECKING:
    from service.metrics import Metrics

T = TypeVar("T")


class GarminGateway:
    """Login, MFA and session use for one app instance, on its own thread pool."""

    def __init__(
        self, settings: GarminSettings, threads: int, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="garmin")
        # one connection pool for every client of this gateway: a job reuses a warm
        # connection instead of opening its own (sockets only; credentials stay per client)
        self._transport = Transport(settings.retries, pool_size=threads)
        self._metrics = metrics
        self._lock = threading.Lock()
        self._busy = 0
        self._queued = 0

    @property
    def busy_threads(self) -> int:
        """Calls running in a thread of the pool right now."""
        return self._busy

    @property
    def queue_depth(self) -> int:
        """Calls submitted to the pool that no thread has started yet."""
        return self._queued

    def _instrumented(self, operation: str, call: Callable[[], T]) -> T:
        """The body run in the pool: moves the call from queued to busy, times it."""
        with self._lock:
            self._queued -= 1
            self._busy += 1
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            return call()
        except BaseException as exc:
            error = exc
            raise
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._busy -= 1
            if self._metrics is not None:
                self._metrics.garmin_call(operation, error, elapsed)

    def _never_started(self, future: Future[Any]) -> None:
        if future.cancelled():  # cancelled while queued: `_instrumented` never ran
            with self._lock:
                self._queued -= 1

    async def _run(self, operation: str, fn: Callable[..., T], *args: Any) -> T:
        call = functools.partial(fn, *args, transport=self._transport)
        with self._lock:
            self._queued += 1
        try:
            future = self._executor.submit(self._instrumented, operation, call)
        except BaseException:
            with self._lock:
                self._queued -= 1
            raise
        future.add_done_callback(self._never_started)
        return await asyncio.wrap_future(future)

    async def login(self, user_id: str, username: str, password: str) -> LoginResult:
        return await self._run("login", garth_adapter.login, self.settings, user_id, username,
                               password)

    async def resume_mfa(self, user_id: str, mfa_state: str, code: str) -> str:
        return await self._run("resume_mfa", garth_adapter.resume_mfa, self.settings, user_id,
                               mfa_state, code)

    async def validate(self, user_id: str, session: str) -> Usage[dict[str, Any]]:
        return await self._run("validate", garth_adapter.validate, self.settings, user_id,
                               session)

    async def use(
        self, user_id: str, session: str, work: Callable[[GarminApi], T]
    ) -> Usage[T]:
        """Run `work` (synchronous, in the pool) with the user's loaded session.

        Cancelling the awaiting task cannot stop the thread, so the thread is told to start
        no further Garmin call: a job cancelled at shutdown ends within one call's timeout.
        """
        cancelled = threading.Event()
        try:
            return await self._run("use", garth_adapter.use_session, self.settings, user_id,
                                   session, work, cancelled)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def close(self) -> None:
        """Stop taking work; threads finish their current Garmin call in the background.

        Idle pooled connections close now; one still in use closes when its call returns.
        """
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._transport.close()


def configure_consumer(key: str, secret: str) -> None:
    garth_adapter.configure_consumer(key, secret)
