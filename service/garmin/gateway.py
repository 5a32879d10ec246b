"""The async face of the Garmin adapter: every engine call runs in one bounded thread pool.

The engines (garth, and ha-garmin's DI tokens) are synchronous; calling one on the event
loop would stall every request of the process. New logins go to the configured engine
(`GarminSettings.engine`); a stored session or MFA challenge names the engine that made it,
and goes back to that one. The pool size (`garmin.executor_threads`) bounds how many Garmin
calls run at once, which is also the most concurrent load one replica puts on Garmin.

A use of a stored session writes a refresh back through its caller before it ends, also
when cancelled (a rotated DI refresh token that is not stored is a dead session): see `use`.

With metrics, each call is timed in its thread and counted by operation and outcome, and the
gateway keeps how many calls run (`busy_threads`) and wait for a thread (`queue_depth`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from service.cpu import lower_priority
from service.garmin import di, garth
from service.garmin.calls import SessionCalls
from service.garmin.endpoints import profile
from service.garmin.engine import (
    Engine,
    GarminSettings,
    LoadedSession,
    LoginResult,
    engine_of,
)
from service.garmin.errors import AuthRejected

if TYPE_CHECKING:
    from service.metrics import Metrics

T = TypeVar("T")

log = logging.getLogger(__name__)

# persists a refreshed session: the caller's compare-and-set against the row it loaded
WriteBack = Callable[[str], Awaitable[object]]


def _engines(settings: GarminSettings, threads: int) -> dict[str, Engine]:
    """Every engine by the name sessions carry; each serves all the gateway's users (its
    per-user objects are built per call, never shared)."""
    engines: dict[str, Engine] = {
        "garth": garth.GarthEngine(settings, pool_size=threads),
        "di": di.DiEngine(settings, pool_size=threads),
    }
    if settings.engine not in engines:
        raise ValueError(f"unknown Garmin engine {settings.engine!r}; known: {sorted(engines)}")
    return engines


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
        self._engines = _engines(settings, threads)
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

    async def _run(self, operation: str, fn: Callable[..., T], *args: Any,
                   in_flight: set[Future[Any]] | None = None) -> T:
        """Run `fn(*args)` in the pool; a use's calls are kept in `in_flight` until they end
        (a cancelled await leaves a started call running in its thread)."""
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
        if in_flight is None:
            return await asyncio.wrap_future(future)
        in_flight.add(future)
        try:
            return await asyncio.wrap_future(future)
        finally:
            if future.done():
                in_flight.discard(future)

    async def login(self, user_id: str, username: str, password: str) -> LoginResult:
        engine = self._engines[self.settings.engine]
        return await self._run("login", engine.login, user_id, username, password)

    async def resume_mfa(self, user_id: str, mfa_state: str, code: str) -> str:
        engine = self._engine_of(mfa_state)
        return await self._run("resume_mfa", engine.resume_mfa, user_id, mfa_state, code)

    def _engine_of(self, stored: str) -> Engine:
        """The engine that made a stored session or challenge; one this replica lacks
        cannot use it."""
        engine = self._engines.get(engine_of(stored))
        if engine is None:
            raise AuthRejected("the stored session is of an unknown Garmin engine")
        return engine

    async def validate(self, user_id: str, session: str,
                       write_back: WriteBack) -> dict[str, Any]:
        """A cheap authenticated call (the social profile) proving the session still works."""
        return await self.use(user_id, session, profile, write_back, operation="validate")

    async def use(
        self, user_id: str, session: str, work: Callable[[SessionCalls], Awaitable[T]],
        write_back: WriteBack, *, parallel: int = 1, background: bool = False,
        operation: str = "use",
    ) -> T:
        """Load-Use: run `work` with the user's stored session; at most `parallel` of its
        Garmin calls at once, each in a thread of the pool.

        Only calls hold a thread: a job waiting between calls, or cancelled, holds none (a
        cancelled job's queued calls never start; its running call ends within its
        timeout). `background` work (sync jobs) has at most one call per thread submitted at
        any time, so a login or a live check never queues behind a whole tick of sync calls.

        Update, for the session: a session the engine refreshed is handed to `write_back`
        (the caller's compare-and-set) before `use` returns or raises, however the use
        ends: with a value, a transient `GarminError`, or cancelled. A rotated refresh
        token that is not stored is a dead session. Never after a definitive rejection
        (`AuthRejected`): that session is gone.
        """
        api = self._engine_of(session).session(user_id, session)
        in_flight: set[Future[Any]] = set()
        calls = SessionCalls(api, parallel, self._background if background else None,
                             functools.partial(self._run, operation, in_flight=in_flight))
        keep = functools.partial(self._keep_refresh, api, in_flight, write_back)
        try:
            value = await work(calls)
        except AuthRejected:
            raise
        except BaseException:
            if in_flight or api.refreshed:
                try:
                    await _to_the_end(keep)
                except Exception:
                    log.exception("user %s: the refreshed session could not be written back",
                                  user_id)
            raise
        if in_flight or api.refreshed:
            await _to_the_end(keep)
        return value

    async def _keep_refresh(self, api: LoadedSession, in_flight: set[Future[Any]],
                            write_back: WriteBack) -> None:
        """Write back what the use refreshed, once none of its calls still runs.

        A cancelled use (or one that failed while a parallel call went on) can leave calls
        running in the pool, and one of them may still refresh: they are waited for, at
        most the longest a call runs (`GarminSettings.call_seconds`)."""
        running = [asyncio.wrap_future(future) for future in in_flight if not future.done()]
        for waiting in running:
            waiting.add_done_callback(_retrieve)
        if running:
            await asyncio.wait(running, timeout=self.settings.call_seconds)
        refreshed = await self._refreshed_session(api)
        if refreshed is not None:
            await write_back(refreshed)

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
        for engine in self._engines.values():
            engine.close()


async def _to_the_end(step: Callable[[], Awaitable[None]]) -> None:
    """Run `step` to its end even when the awaiting task is cancelled meanwhile (again, say,
    at shutdown); that cancellation is raised once the step is done."""
    task = asyncio.ensure_future(step())
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not task.cancelled() and task.exception() is not None:
            log.error("finishing a cancelled use failed", exc_info=task.exception())
        raise asyncio.CancelledError
    task.result()


def _retrieve(done: asyncio.Future[Any]) -> None:
    """Mark a waited-for call's failure as seen: the call that made it reported it already,
    or was cancelled, and asyncio would otherwise log it as never retrieved."""
    if not done.cancelled():
        done.exception()


def configure_consumer(key: str, secret: str) -> None:
    """Give the engine Garmin's OAuth consumer (garth would otherwise fetch one)."""
    garth.configure_consumer(key, secret)
