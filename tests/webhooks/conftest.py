"""Webhook test fixtures: a migrated database with empty webhook tables, a running receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tortoise.context import TortoiseContext

from service import db
from tests.support.app import PG_URL
from tests.support.webhooks import WEBHOOK_TABLES, Receiver, new_secret


@pytest.fixture
async def wh_db(database_url: str) -> AsyncIterator[TortoiseContext]:
    """A migrated database with empty webhook tables, its context active in the test."""
    await db.upgrade(database_url)
    ctx = await db.open_context(database_url)
    db.activate(ctx)
    if PG_URL:
        for table in WEBHOOK_TABLES:
            await ctx.db().execute_script(f'DELETE FROM "{table}"')
    yield ctx
    await db.close_context(ctx)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver(secrets=[new_secret(), new_secret()])
    await r.start()
    yield r
    await r.stop()
