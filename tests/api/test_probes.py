"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from service.config import Config
from service.keys import DB_CONTEXT, SCHEDULER
from tests.support.aliases import StartApi
from tests.support.app import Api


async def test_readyz_answers_ready_without_a_key(api: Api) -> None:
    response = await api.client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready"}


async def test_readyz_is_503_when_the_database_stalls(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = api.app[DB_CONTEXT].db()

    async def stalled(*args: object, **kwargs: object) -> None:
        await asyncio.sleep(30)

    monkeypatch.setattr(connection, "execute_query", stalled)
    response = await api.client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert response.content_type == "application/problem+json"
    assert body["failing"] == ["database"]


async def test_readyz_is_503_when_the_scheduler_stopped(
    make_config: Callable[..., Config], start_api: StartApi
) -> None:
    api = await start_api(make_config(sync={"enabled": True, "tick_seconds": 60}))
    assert (await api.client.get("/readyz")).status == 200
    await api.app[SCHEDULER].shutdown()
    response = await api.client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["failing"] == ["scheduler"]
