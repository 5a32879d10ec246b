"""A transaction cancelled while it begins gives its connection back (SQLite's one lock, or
PostgreSQL's pooled connection): the next statement does not wait forever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tortoise.backends.asyncpg.client import TransactionWrapper as PostgresTransaction
from tortoise.backends.sqlite.client import SqliteTransactionWrapper as SqliteTransaction
from tortoise.context import TortoiseContext

from service import db
from service.models.webhooks import WebhookEvent
from service.store import sql


@pytest.fixture
async def context(database_url: str) -> AsyncIterator[TortoiseContext]:
    await db.upgrade(database_url)
    ctx = await db.open_context(database_url)
    db.activate(ctx)
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
