"""Helpers for sync tests: connect users, run jobs to completion, read what was stored."""

from __future__ import annotations

import asyncio
from typing import Any

from service import db
from service.keys import DB_CONTEXT, SCHEDULER
from tests.conftest import Api, Sandbox


async def connect(api: Api, sandbox: Sandbox, user: str, username: str, **account: Any) -> None:
    sandbox.add(username, **account)
    response = await api.login(user, username)
    assert response.status == 200, await response.text()


async def drain(api: Api, timeout: float = 30) -> None:
    """Wait until this app instance runs no sync job."""
    scheduler = api.app[SCHEDULER]
    async with asyncio.timeout(timeout):
        while scheduler.active_jobs:
            await asyncio.sleep(0.02)


async def sync_now(api: Api, user: str, *kinds: str) -> list[dict[str, Any]]:
    """POST /sync, wait for the jobs, return them as the jobs endpoint reports them."""
    body = {"kinds": list(kinds)} if kinds else {}
    response = await api.client.post("/api/v1/garmin/sync", headers=api.headers(user), json=body)
    assert response.status == 202, await response.text()
    ids = {job["id"] for job in (await response.json())["jobs"]}
    await drain(api)
    listing = await api.client.get("/api/v1/garmin/sync/jobs?limit=500", headers=api.headers(user))
    return [job for job in (await listing.json())["items"] if job["id"] in ids]


def use_db(api: Api) -> None:
    db.activate(api.app[DB_CONTEXT])
