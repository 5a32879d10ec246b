"""Helpers for the fault-injection tests: problem checks, PostgreSQL sabotage, sandbox traffic.

The PostgreSQL helpers act from a connection of their own (asyncpg, outside the app's pool),
the way an operator or a failover would: terminate the app's backends, hold table locks,
and watch `pg_stat_activity` to know when an app query is really stuck (never a fixed wait).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from tortoise.exceptions import DBConnectionError

from service.errors import PROBLEM_CONTENT_TYPE, TYPE_BASE
from tests.support.waiting import eventually

T = TypeVar("T")

# what the test's own reads may meet on a pooled connection whose backend was just killed
BROKEN_CONNECTION = (OSError, DBConnectionError, asyncpg.exceptions.PostgresConnectionError,
                     asyncpg.exceptions.InterfaceError, asyncpg.exceptions.InternalClientError,
                     asyncpg.exceptions.AdminShutdownError)

TERMINATE_APP_BACKENDS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def problem(response: Any, status: int | None = None,
                  slug: str | None = None) -> dict[str, Any]:
    """The body of a problem+json answer, checked for shape (and status and type if given)."""
    text = await response.text()
    if status is not None:
        assert response.status == status, text
    assert 400 <= response.status < 600, text
    assert response.content_type == PROBLEM_CONTENT_TYPE, (response.content_type, text)
    body: dict[str, Any] = await response.json(content_type=None)
    assert body["type"].startswith(TYPE_BASE), body
    assert body["status"] == response.status, body
    if slug is not None:
        assert body["type"] == TYPE_BASE + slug, body
    return body


async def not_a_500(response: Any) -> tuple[int, dict[str, Any]]:
    """Any answer under fault: a 2xx (JSON) or a 4xx/5xx problem+json, never a 500."""
    text = await response.text()
    assert response.status != 500, text
    if response.status < 400:
        assert 200 <= response.status < 300, text
        return response.status, await response.json()
    return response.status, await problem(response)


# --- PostgreSQL ---------------------------------------------------------------------------


async def read_through_drop(read: Callable[[], Awaitable[T]], timeout: float = 5) -> T:
    """The test's own database read, retried while the app's pool still holds connections
    whose backend was killed (the test checks the service, not its own reads)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await read()
            except BROKEN_CONNECTION:
                await asyncio.sleep(0.02)


async def terminate_app_backends(connection: Any) -> int:
    """Kill every other backend of this database (the app's pool); returns how many."""
    rows = await connection.fetch(TERMINATE_APP_BACKENDS)
    return sum(1 for row in rows if row[0])


async def backends_waiting_on_lock(connection: Any, query_prefix: str) -> int:
    """How many other backends wait for a lock while running a query starting so.

    Inside a transaction PostgreSQL serves one statistics snapshot until it is cleared.
    """
    await connection.execute("SELECT pg_stat_clear_snapshot()")
    return int(await connection.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE $1",
        query_prefix + "%",
    ))


@asynccontextmanager
async def table_locked(connection: Any, table: str) -> AsyncIterator[None]:
    """Hold `LOCK TABLE <table> IN ACCESS EXCLUSIVE MODE` in an open transaction."""
    transaction = connection.transaction()
    await transaction.start()
    try:
        await connection.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
        yield
    finally:
        await transaction.rollback()


# --- the sandbox's traffic ------------------------------------------------------------------


class Traffic:
    """What reached the sandbox, per caller (the `X-Sandbox-Caller` header: our user id).

    The sandbox records a request when it has answered it, so a request still hanging is not
    in `state.requests` yet; every Garmin route counts the request on arrival, though, so
    wrapping that count tells when everything that arrived has also been recorded.
    """

    def __init__(self, state: Any) -> None:
        self._state = state
        self.arrived = 0
        counted = state.count

        def count(username: str | None, scope: str) -> None:
            self.arrived += 1
            counted(username, scope)

        state.count = count

    async def mark(self) -> int:
        """A point in the record (taken once all is quiet); `since(mark)` reads what follows."""
        await self.settled()
        return len(self._state.requests)

    async def settled(self, timeout: float = 10) -> None:
        """Wait until every request that reached the sandbox has been answered and recorded."""
        await eventually(lambda: len(self._state.requests) >= self.arrived, timeout=timeout)

    async def since(self, mark: int, caller: str) -> list[tuple[str, str, int | None]]:
        """(method, path, status) of the caller's requests after `mark`, once all are in."""
        await self.settled()
        return [(r.method, r.path, r.status) for r in self._state.requests[mark:]
                if r.caller == caller]
