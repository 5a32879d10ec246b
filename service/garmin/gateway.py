"""The async face of the Garmin adapter: every engine call runs in one bounded thread pool.

The engine (garth) is synchronous (requests); calling it on the event loop would stall every
request of the process. The pool size (`garmin.executor_threads`) bounds how many Garmin
calls run at once, which is also the most concurrent load one replica puts on Garmin.

With metrics, each call is timed in its thread and counted by operation and outcome, and the
gateway keeps how many calls run (`busy_threads`) and wait for a thread (`queue_depth`).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from service.cpu import lower_priority
from service.garmin import garth
from service.garmin.calls import SessionCalls
from service.garmin.endpoints import profile
from service.garmin.engine import Engine, GarminSettings, LoadedSession, LoginResult, Usage
from service.garmin.errors import AuthRejected, GarminError

if TYPE_CHECKING:
    from service.metrics import Metrics

T = TypeVar("T")


def _engine(settings: GarminSettings, threads: int) -> Engine:
    """The engine the gateway's calls go through: garth, the only one so far."""
    return garth.GarthEngine(settings, pool_size=threads)


class GarminGateway:
    """Login, MFA and session use for one app instance, on its own thread pool.

    Metrics count every Garmin call by operation: `login`, `resume_mfa`, `validate` (a live
    status check) and `use` (each call of a sync job)."""

    def __init__(
        self, settings: GarminSettings, threads: int, metrics: Metrics | None = None,
        thread_nice: int = 0,
    ) -> None:
        self.settings = settings
        # The pool's threads run below the event loop's priority (`garmin.thread_nice`): the
        # loop answers requests, the threads do Garmin calls that can wait a moment. With
        # both on one busy core, a woken loop then runs at once instead of sharing the core
        # with a sync's calls. Within the process nothing starves: a loop waiting for the
        # GIL sleeps, and the pool thread holding it runs.
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="garmin",
                                            initializer=lower_priority,
                                            initargs=(thread_nice,))
        self._engine = _engine(settings, threads)
        self._background = asyncio.Semaphore(threads)
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
        call = functools.partial(fn, *args)
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

    @property
    def engine_name(self) -> str | None:
        """Which engine connects sessions (reported in `session.connected`)."""
        name = getattr(self._engine, "name", None)
        return name if isinstance(name, str) else None

    async def login(self, user_id: str, username: str, password: str) -> LoginResult:
        return await self._run("login", self._engine.login, user_id, username, password)

    async def resume_mfa(self, user_id: str, mfa_state: str, code: str) -> str:
        return await self._run("resume_mfa", self._engine.resume_mfa, user_id, mfa_state, code)

    async def validate(self, user_id: str, session: str) -> Usage[dict[str, Any]]:
        """A cheap authenticated call (the social profile) proving the session still works."""
        return await self.use(user_id, session, profile, operation="validate")

    async def use(
        self, user_id: str, session: str, work: Callable[[SessionCalls], Awaitable[T]],
        *, parallel: int = 1, background: bool = False, operation: str = "use",
    ) -> Usage[T]:
        """Load-Use: run `work` with the user's stored session; at most `parallel` of its
        Garmin calls at once, each in a thread of the pool.

        Only calls hold a thread: a job waiting between calls, or cancelled, holds none (a
        cancelled job's queued calls never start; its running call ends within its
        timeout). `background` work (sync jobs) has at most one call per thread submitted at
        any time, so a login or a live check never queues behind a whole tick of sync calls.
        On a `GarminError` the error carries the session the engine refreshed before failing,
        if any (never after a definitive rejection), so the caller can still write it back.
        """
        api = self._engine.session(user_id, session)
        calls = SessionCalls(api, parallel, self._background if background else None,
                             functools.partial(self._run, operation))
        try:
            value = await work(calls)
        except GarminError as error:
            if not isinstance(error, AuthRejected):
                error.refreshed_session = await self._refreshed_session(api)
            raise
        return Usage(value, await self._refreshed_session(api))

    async def _refreshed_session(self, api: LoadedSession) -> str | None:
        """The session to write back, dumped in the pool: the engine stays off the event loop, and
        a call of the same job still refreshing in a thread holds the client's lock."""
        if not api.refreshed:
            return None
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, api.refreshed_session)

    def close(self) -> None:
        """Stop taking work; threads finish their current Garmin call in the background.

        Idle pooled connections close now; one still in use closes when its call returns.
        """
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._engine.close()


def configure_consumer(key: str, secret: str) -> None:
    """Give the engine Garmin's OAuth consumer (garth would otherwise fetch one)."""
    garth.configure_consumer(key, secret)
