"""Hand-written SQL for the statements every sync job runs, on SQLite and PostgreSQL alike.

Tortoise builds each query with pypika and turns every row into a model, which costs
150-300 µs of CPU per statement: more than a sync job's own work when a job runs a dozen
of them. The hot statements (leases, job and cursor bookkeeping, the session load, the
upserts) are written out once here with `?` placeholders and rendered per dialect
(`$1, $2, ...` on PostgreSQL). Values go in as Tortoise passes them (aware datetimes,
dates, plain strings for enums, the JSON field's own encoding), so a row written here is
the same as one Tortoise would write, and rows read here become models through Tortoise's
own `_init_from_db`.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.models import Model
from tortoise.transactions import in_transaction

M = TypeVar("M", bound=Model)
T = TypeVar("T")

_PLACEHOLDER = re.compile(r"\?")
_CAST = re.compile(r"::[a-z]+")


class Sql:
    """One statement, written with `?` placeholders; `::type` casts are kept on PostgreSQL
    only (SQLite has no such syntax and needs none)."""

    __slots__ = ("_rendered", "text")

    def __init__(self, text: str) -> None:
        self.text = " ".join(text.split())
        self._rendered: dict[str, str] = {}

    def render(self, dialect: str) -> str:
        rendered = self._rendered.get(dialect)
        if rendered is None:
            if dialect == "postgres":
                numbers = iter(range(1, self.text.count("?") + 1))
                rendered = _PLACEHOLDER.sub(lambda _match: f"${next(numbers)}", self.text)
            else:
                rendered = _CAST.sub("", self.text)
            self._rendered[dialect] = rendered
        return rendered


def connection_of(model: type[Model]) -> BaseDBAsyncClient:
    """The connection Tortoise would use for `model` in the active context."""
    return model._meta.db


SqliteWork = Callable[[sqlite3.Connection], object]

# SQLite work queued by `at_commit`, per open `transaction`
_AT_COMMIT: weakref.WeakKeyDictionary[BaseDBAsyncClient, list[SqliteWork]] = (
    weakref.WeakKeyDictionary())
# PostgreSQL: the write queued by `with_next` (data-modifying CTEs and their values), per
# open `transaction`; at most one at a time
_NEXT: weakref.WeakKeyDictionary[BaseDBAsyncClient, list[tuple[Sql, list[Any]]]] = (
    weakref.WeakKeyDictionary())


@contextlib.asynccontextmanager
async def transaction(model: type[Model]) -> AsyncIterator[BaseDBAsyncClient]:
    """A transaction on `model`'s connection (named: the context may hold several).

    On SQLite, work queued with `at_commit` runs on the connection's thread right before
    COMMIT, in the commit's own handoff; when it fails the transaction rolls back and its
    error is raised from the block's end. On PostgreSQL, a write queued with `with_next`
    that no statement carried runs alone before COMMIT.

    Tortoise's transaction context takes SQLite's one connection lock (or a pooled
    PostgreSQL connection) and only then sends BEGIN; a cancellation that lands during BEGIN
    leaves `__aenter__` without `__aexit__` ever running, and on SQLite every later statement
    of the process then waits for that lock forever (a job or prune cancelled at shutdown
    did it). Once the context holds its lock or connection (it has set its `token`), a
    failed entry is ended here with a rollback that gives them back.
    """
    context = in_transaction(model._meta.default_connection)
    try:
        connection = await context.__aenter__()
    except BaseException as exc:
        if hasattr(context, "token"):
            # a BEGIN that never ran may refuse the rollback; the lock or connection is given
            # back either way, and the entry's own error is the one to raise
            with contextlib.suppress(Exception):
                await context.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    (_AT_COMMIT if connection.capabilities.dialect == "sqlite" else _NEXT)[connection] = []
    try:
        yield connection
        work = _AT_COMMIT.pop(connection, None)
        if work:
            await _commit_with(connection, work)
        queued = _NEXT.pop(connection, None)
        if queued:
            await _run_alone(connection, *queued[0])
    except BaseException as exc:
        _AT_COMMIT.pop(connection, None)
        _NEXT.pop(connection, None)
        await context.__aexit__(type(exc), exc, exc.__traceback__)
        raise
    await context.__aexit__(None, None, None)


def at_commit(connection: BaseDBAsyncClient, work: SqliteWork) -> bool:
    """Queue `work` (statements on SQLite's own connection; it must not commit) to run just
    before the commit of the SQLite `transaction` that yielded `connection`: one handoff
    to SQLite's thread for the work and the commit, where each statement would cost one of
    its own. False when `connection` is no such transaction: run the work now instead."""
    queued = _AT_COMMIT.get(connection)
    if queued is None:
        return False
    queued.append(work)
    return True


async def _commit_with(connection: BaseDBAsyncClient, work: list[SqliteWork]) -> None:
    """Run `work`, then COMMIT, in one call on SQLite's thread; a failure rolls back there.
    Either way the transaction is over: Tortoise's exit then only gives its lock back."""

    def finish(driver: sqlite3.Connection) -> None:
        try:
            for step in work:
                step(driver)
        except BaseException:
            driver.rollback()
            raise
        driver.commit()

    try:
        await on_sqlite_thread(connection, finish)
    finally:
        # the commit or rollback was handed to the thread, which completes it even when
        # this task is cancelled meanwhile (as Tortoise's own commit does)
        connection._finalized = True  # type: ignore[attr-defined]


async def with_next(connection: BaseDBAsyncClient, ctes: Sql, values: Sequence[Any]) -> bool:
    """Queue a PostgreSQL write for the next statement `execute` runs in the `transaction`
    that yielded `connection`, which carries it as a prefix of data-modifying CTEs: one
    round trip for both, where each would cost one of its own (else it runs alone before
    COMMIT). `ctes` is `name AS (...)[, ...]`; the CTEs must touch no row their carrier
    does (PostgreSQL would apply only one of two changes to a row) and use names no
    carrier uses. A write queued before runs alone first, so writes keep their order.
    False when `connection` is no such transaction: run the write now (`run_ctes`)."""
    queued = _NEXT.get(connection)
    if queued is None:
        return False
    if queued:
        await _run_alone(connection, *queued.pop())
    queued.append((ctes, list(values)))
    return True


async def run_ctes(connection: BaseDBAsyncClient, ctes: Sql, values: Sequence[Any]) -> None:
    """Run a write `with_next` could not queue, alone."""
    await _run_alone(connection, ctes, list(values))


@functools.lru_cache(maxsize=64)
def _alone(ctes: Sql) -> Sql:
    return Sql(f"WITH {ctes.text} SELECT 1")


@functools.lru_cache(maxsize=64)
def _carried(ctes: Sql, statement: Sql) -> Sql:
    text = statement.text
    if text[:5].upper() == "WITH ":
        return Sql(f"WITH {ctes.text}, {text[5:]}")
    return Sql(f"WITH {ctes.text} {text}")


async def _run_alone(connection: BaseDBAsyncClient, ctes: Sql, values: list[Any]) -> None:
    await connection.execute_query(_alone(ctes).render("postgres"), values)


async def _execute_carrying(statement: Sql, values: Sequence[Any], rider: tuple[Sql, list[Any]],
                            connection: BaseDBAsyncClient) -> int:
    """`statement` with the queued write as its CTEs. Tortoise would count a statement
    that starts with WITH by the rows it returns, so it runs here on the driver, whose
    command tag ("UPDATE 2", "INSERT 0 1") ends with the main statement's row count."""
    ctes, ctes_values = rider
    text = _carried(ctes, statement).render("postgres")

    async def run(client: BaseDBAsyncClient) -> str:
        async with client.acquire_connection() as driver:
            return str(await driver.execute(text, *ctes_values, *values))

    # Tortoise's own translation of driver errors (IntegrityError, OperationalError)
    tag = await connection._translate_exceptions(run)  # type: ignore[attr-defined]
    count = str(tag).rpartition(" ")[2]
    return int(count) if count.isdigit() else 0


async def execute(sql: Sql, values: Sequence[Any], connection: BaseDBAsyncClient) -> int:
    """Run a statement; the number of rows it changed (or returned). It carries the write
    queued by `with_next`, if any."""
    queued = _NEXT.get(connection) if _NEXT else None
    if queued:
        return await _execute_carrying(sql, values, queued.pop(), connection)
    count, _rows = await connection.execute_query(
        sql.render(connection.capabilities.dialect), list(values))
    return int(count)


async def fetch(sql: Sql, values: Sequence[Any],
                connection: BaseDBAsyncClient) -> list[dict[str, Any]]:
    """The rows of a SELECT, or of a write with RETURNING, as dicts by column name."""
    return await connection.execute_query_dict(
        sql.render(connection.capabilities.dialect), list(values))


async def execute_many(sql: Sql, rows: Iterable[Sequence[Any]],
                       connection: BaseDBAsyncClient) -> None:
    """One statement for many parameter rows (call it inside a transaction)."""
    await connection.execute_many(sql.render(connection.capabilities.dialect),
                                  [list(row) for row in rows])


async def on_sqlite_thread(connection: BaseDBAsyncClient,
                           work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work` with SQLite's own connection, on the thread that owns it: several
    statements for one handoff. Each statement Tortoise runs is a round trip to aiosqlite's
    thread and back, which costs more CPU than a small statement itself. `work` must not
    commit: it runs inside the caller's transaction, under the connection's lock as
    Tortoise's own statements do."""
    async with connection.acquire_connection() as driver:
        try:
            return await driver._execute(work, driver._conn)  # type: ignore[no-any-return]
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(exc) from exc
        except sqlite3.OperationalError as exc:
            raise OperationalError(exc) from exc


def model(cls: type[M], row: dict[str, Any]) -> M:
    """A model instance from a full row (every column), as Tortoise builds it for a query."""
    return cls._init_from_db(**row)
