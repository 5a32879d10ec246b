"""Kubernetes-style probes: `/healthz` (liveness, no I/O), `/readyz` (can take traffic), and
the Prometheus scrape endpoint `/metrics`."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import generate_latest

from service.errors import NotReady
from service.keys import CLOCK, CONFIG, DB_CONTEXT, METRICS, SCHEDULER
from service.metrics import CONTENT_TYPE

log = logging.getLogger(__name__)

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
        raise NotReady(failing)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this app instance's registry.

    The sessions-by-status gauge is counted here, with one grouped query; when the database
    does not answer, the last counts are served and the failure is logged.
    """
    registry = request.app[METRICS]
    try:
        await registry.refresh_sessions(request.app[CLOCK].now())
    except Exception:  # a scrape still answers with everything else
        log.warning("counting sessions for /metrics failed", exc_info=True)
    body = generate_latest(registry.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
