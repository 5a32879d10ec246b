"""A transaction cancelled while it begins gives its connection back (SQLite's one lock, or
PostgreSQL's pooled connection): the next statement does not wait forever. Work queued
for the commit (`sql.at_commit`, SQLite) or for the next statement (`sql.with_next`,
PostgreSQL) commits or rolls back with the transaction."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tortoise.backends.asyncpg.client import TransactionWrapper as PostgresTransaction
from tortoise.backends.sqlite.client import SqliteTransactionWrapper as SqliteTransaction
from tortoise.context import TortoiseContext
from tortoise.exceptions import IntegrityError

from service import db
from service.models.webhooks import WebhookEvent
from service.store import sql


@pytest.fixture
async def context(database_url: str) -> AsyncIterator[TortoiseContext]:
    await db.upgrade(database_url)
    ctx = await db.open_context(database_url)
    db.activate(ctx)
    # PostgreSQL's test database outlives a test
    await sql.execute(sql.Sql("DELETE FROM webhook_user_sequence"), [],
                      sql.connection_of(WebhookEvent))
    yield ctx
    await db.close_context(ctx)


async def test_a_transaction_cancelled_during_begin_leaves_the_connection_usable(
        context: TortoiseContext, monkeypatch: pytest.MonkeyPatch) -> None:
    beginning = asyncio.Event()
    never = asyncio.Event()

    async def slow_begin(self: Any) -> None:
        beginning.set()
        await never.wait()  # BEGIN still on its way when the cancellation lands

    for wrapper in (SqliteTransaction, PostgresTransaction):
        monkeypatch.setattr(wrapper, "begin", slow_begin)

    async def job() -> None:
        async with sql.transaction(WebhookEvent):
            raise AssertionError("the transaction never began")

    task = asyncio.ensure_future(job())
    await beginning.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    monkeypatch.undo()

    async with asyncio.timeout(10):  # without the fix: waits for the lock forever on SQLite
        async with sql.transaction(WebhookEvent) as connection:
            assert await sql.fetch(sql.Sql("SELECT 1 AS one"), [], connection) == [{"one": 1}]
        assert await WebhookEvent.all().count() >= 0



# --- work queued for the commit: SQLite runs it and COMMIT in one handoff ----------------
# A mechanism of SQLite's only, so these tests run on SQLite whatever the suite's database.

SEQUENCES = sql.Sql("SELECT user_id, sequence FROM webhook_user_sequence ORDER BY user_id")
INSERT = sql.Sql("INSERT INTO webhook_user_sequence (user_id, sequence) VALUES (?, ?)")


@pytest.fixture
async def sqlite_context(tmp_path: Path) -> AsyncIterator[TortoiseContext]:
    url = f"sqlite://{tmp_path}/at-commit.sqlite3"
    await db.upgrade(url)
    ctx = await db.open_context(url)
    db.activate(ctx)
    yield ctx
    await db.close_context(ctx)


def insert(user_id: str, value: int, ran: list[str] | None = None,
           gate: threading.Event | None = None) -> Callable[[sqlite3.Connection], None]:
    def work(driver: sqlite3.Connection) -> None:
        if ran is not None:
            ran.append(user_id)
        if gate is not None:
            assert gate.wait(10)
        driver.execute(INSERT.render("sqlite"), (user_id, value))
    return work


async def committed() -> list[tuple[str, int]]:
    rows = await sql.fetch(SEQUENCES, [], sql.connection_of(WebhookEvent))
    return [(row["user_id"], int(row["sequence"])) for row in rows]


async def test_work_queued_at_commit_runs_with_the_commit(
        sqlite_context: TortoiseContext) -> None:
    ran: list[str] = []
    async with sql.transaction(WebhookEvent) as connection:
        assert sql.at_commit(connection, insert("u2", 2, ran))
        assert sql.at_commit(connection, insert("u1", 1, ran))
        assert ran == []
        assert await sql.fetch(SEQUENCES, [], connection) == []  # not even in the transaction
    assert ran == ["u2", "u1"]
    assert await committed() == [("u1", 1), ("u2", 2)]
    # nothing to queue on outside a `transaction`: the caller runs its work itself
    assert not sql.at_commit(sql.connection_of(WebhookEvent), insert("u3", 3))


async def test_postgresql_queues_nothing(context: TortoiseContext) -> None:
    async with sql.transaction(WebhookEvent) as connection:
        queued = sql.at_commit(connection, insert("u1", 1))
    assert queued is (connection.capabilities.dialect == "sqlite")


@pytest.mark.parametrize("failing", ["the queued work", "the block"])
async def test_a_failure_rolls_back_the_block_and_the_queued_work(
        sqlite_context: TortoiseContext, failing: str) -> None:
    ran: list[str] = []
    with pytest.raises(IntegrityError if failing == "the queued work" else ValueError):
        async with sql.transaction(WebhookEvent) as connection:
            await sql.execute(INSERT, ["u1", 1], connection)
            sql.at_commit(connection, insert("u2", 2, ran))
            sql.at_commit(connection, insert("u1", 9, ran))  # u1 is there: refused
            if failing == "the block":
                raise ValueError("the block failed")
    assert ran == (["u2", "u1"] if failing == "the queued work" else [])
    assert await committed() == []
    async with asyncio.timeout(10), sql.transaction(WebhookEvent) as connection:
        sql.at_commit(connection, insert("u3", 3))
    assert await committed() == [("u3", 3)]


async def test_cancelled_while_committing_the_commit_completes_and_the_lock_is_free(
        sqlite_context: TortoiseContext) -> None:
    """Once handed to SQLite's thread the work and COMMIT complete, as Tortoise's own
    commit does when its caller is cancelled; the next transaction waits for nothing."""
    gate = threading.Event()
    ran: list[str] = []

    async def job() -> None:
        async with sql.transaction(WebhookEvent) as connection:
            sql.at_commit(connection, insert("u1", 1, ran, gate))

    task = asyncio.ensure_future(job())
    while not ran:  # the work is running on SQLite's thread, held by `gate`
        await asyncio.sleep(0)
    task.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with asyncio.timeout(10), sql.transaction(WebhookEvent) as connection:
        sql.at_commit(connection, insert("u2", 2))
    assert await committed() == [("u1", 1), ("u2", 2)]


# --- PostgreSQL: a write queued for the next statement rides on it as CTEs --------------
# On SQLite `with_next` queues nothing (SQLite has no data-modifying CTEs): each test checks
# that, then the rest runs on PostgreSQL only.

ADD = sql.Sql("added AS (INSERT INTO webhook_user_sequence (user_id, sequence) "
              "VALUES (?::text, ?::bigint))")
BUMP = sql.Sql("bumped AS (UPDATE webhook_user_sequence SET sequence = sequence + ?::bigint "
               "WHERE user_id = ?::text)")
SET = sql.Sql("UPDATE webhook_user_sequence SET sequence = ? WHERE user_id = ?")
SET_VIA_CTE = sql.Sql("WITH wanted AS (SELECT ?::bigint AS value) "
                      "UPDATE webhook_user_sequence SET sequence = (SELECT value FROM wanted) "
                      "WHERE user_id = ?")


async def queues(connection: Any) -> bool:
    """Whether `with_next` queues on `connection` (PostgreSQL transactions only)."""
    queued = await sql.with_next(connection, ADD, ["probe", 1])
    assert queued is (connection.capabilities.dialect == "postgres")
    return queued


async def test_a_queued_write_rides_on_the_next_statement_in_one_round_trip(
        context: TortoiseContext) -> None:
    assert not await sql.with_next(sql.connection_of(WebhookEvent), ADD, ["u9", 9])
    sent: list[str] = []
    async with sql.transaction(WebhookEvent) as connection:
        if not await queues(connection):
            return
        await sql.execute(INSERT, ["u0", 0], connection)  # carries the probe
        assert await sql.with_next(connection, ADD, ["u1", 1])
        assert await sql.fetch(SEQUENCES, [], connection) == [
            {"user_id": "probe", "sequence": 1}, {"user_id": "u0", "sequence": 0}]
        # asyncpg logs each statement sent, once it completed
        connection._connection.add_query_logger(lambda record: sent.append(record.query))
        # the main statement's row count, not the rows the statement returned (none)
        assert await sql.execute(SET, [5, "u0"], connection) == 1
        assert await sql.with_next(connection, BUMP, [10, "u0"])
        assert await sql.execute(SET_VIA_CTE, [7, "u1"], connection) == 1  # WITH meets WITH
    # two statements for two writes and their carriers (the COMMIT was awaited since)
    writes = [query.split(" (")[0] for query in sent if "webhook_user_sequence" in query]
    assert writes == ["WITH added AS", "WITH bumped AS"]
    assert await committed() == [("probe", 1), ("u0", 15), ("u1", 7)]


async def test_an_uncarried_write_runs_before_commit_and_queued_writes_keep_their_order(
        context: TortoiseContext) -> None:
    async with sql.transaction(WebhookEvent) as connection:
        if not await queues(connection):
            return
        # the probe runs alone when the next write is queued: the bump then sees its row,
        # which in one statement (one snapshot) it would not
        assert await sql.with_next(connection, BUMP, [10, "probe"])
    assert await committed() == [("probe", 11)]


async def test_a_failing_carrier_rolls_back_its_rider_and_raises_as_tortoise_does(
        context: TortoiseContext) -> None:
    async with sql.transaction(WebhookEvent) as connection:
        if not await queues(connection):
            return
    with pytest.raises(IntegrityError):
        async with sql.transaction(WebhookEvent) as connection:
            assert await sql.with_next(connection, ADD, ["u1", 1])
            await sql.execute(INSERT, ["probe", 2], connection)  # probe is there: refused
    assert await committed() == [("probe", 1)]
    with pytest.raises(ValueError, match="the block failed"):
        async with sql.transaction(WebhookEvent) as connection:
            assert await sql.with_next(connection, ADD, ["u2", 2])
            raise ValueError("the block failed")
    assert await committed() == [("probe", 1)]


# --- PostgreSQL's pool takes connections back without a reset round trip ----------------


async def test_the_pool_skips_the_session_reset_but_still_ends_open_transactions(
        context: TortoiseContext) -> None:
    client = sql.connection_of(WebhookEvent)
    await sql.fetch(sql.Sql("SELECT 1 AS one"), [], client)  # the pool exists once used
    if client.capabilities.dialect != "postgres":
        return  # SQLite has no pool
    pool = client._pool  # type: ignore[attr-defined]
    sent: list[str] = []

    def log(record: Any) -> None:
        sent.append(record.query)

    async with pool.acquire() as raw:
        raw.add_query_logger(log)
        await raw.execute("BEGIN")
        await raw.execute("INSERT INTO webhook_user_sequence (user_id, sequence) "
                          "VALUES ('left-open', 1)")
    # asyncpg rolled the open transaction back when the pool took the connection
    assert sent[0] == "BEGIN" and sent[2:] == ["ROLLBACK"]
    sent.clear()
    async with pool.acquire() as raw:
        raw.add_query_logger(log)
        await raw.execute("SELECT 1")
    assert sent == ["SELECT 1"]  # and no reset query after the statement
    assert await sql.fetch(sql.Sql("SELECT user_id FROM webhook_user_sequence "
                                   "WHERE user_id = 'left-open'"), [], client) == []
