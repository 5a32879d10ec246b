"""Kubernetes-style probes: `/healthz` (liveness, no I/O) and `/readyz` (can take traffic)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from service.keys import CONFIG, DB_CONTEXT, SCHEDULER
from service.problems import Problem

DB_PING_TIMEOUT_SECONDS = 1.0


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers; no I/O."""
    return web.json_response({"status": "ok"})


async def _database_answers(request: web.Request) -> bool:
    try:
        connection = request.app[DB_CONTEXT].db()
        await asyncio.wait_for(connection.execute_query("SELECT 1"), DB_PING_TIMEOUT_SECONDS)
    except Exception:  # any failure to answer means "not ready", never a 500
        return False
    return True


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database answers quickly and the scheduler runs (where enabled).

    Migrations were checked (or applied) at startup, which fails when the schema is not
    current; an app that is up is on a current schema.
    """
    failing: list[str] = []
    if not await _database_answers(request):
        failing.append("database")
    if request.app[CONFIG].sync.enabled and not request.app[SCHEDULER].running:
        failing.append("scheduler")
    if failing:
        raise Problem(503, "not-ready", "Not ready",
                      f"Not ready: {', '.join(failing)}.", failing=failing)
    return web.json_response({"status": "ready"})
