"""Operator API for webhook deliveries, and the app wiring of the dispatcher.

`GET /api/v1/webhooks/deliveries?status=&limit=&cursor=` lists deliveries newest first;
`POST /api/v1/webhooks/deliveries/{id}/retry` queues a dead one again. Both are operator
routes: they need the API key and act on no single user (no `X-User-Id`). Payloads are not
listed: the operator sees ids, types, endpoints, statuses and errors. Finished deliveries
past their retention are pruned (`service.webhooks.retention`): they leave the listing, a
cursor issued before still continues after its position, and a retry of a pruned id
answers 404 like an id that never existed.

`add_routes(app)` registers the handlers; `dispatcher_ctx` is the cleanup context that runs
a dispatcher while the app runs (after the database context).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web

from service import db
from service.api.cursors import CURSORS, query_cursor
from service.errors import BadRequest, DeliveryNotDead, NotFound
from service.keys import CLOCK, DB_CONTEXT, METRICS, OUTBOX
from service.models.webhooks import DeliveryStatus
from service.webhooks import outbox
from service.webhooks.dispatcher import Dispatcher
from service.webhooks.metrics import WebhookMetrics
from service.webhooks.outbox import DeliveryView, utcnow

DISPATCHER = web.AppKey("webhook_dispatcher", Dispatcher)
DELIVERIES_PATH = "/api/v1/webhooks/deliveries"
DELIVERIES_SCOPE = "webhook-deliveries"
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_ID = 2**63 - 1

routes = web.RouteTableDef()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def delivery_json(view: DeliveryView) -> dict[str, Any]:
    d = view.delivery
    return {
        "id": d.id, "message_id": view.message_id, "type": view.type, "user_id": d.user_id,
        "endpoint": d.endpoint, "status": d.status.value, "attempts": d.attempts,
        "next_attempt_at": _iso(d.next_attempt_at) if d.status == DeliveryStatus.PENDING
        else None,
        "last_status": d.last_status, "last_error": d.last_error,
        "queued_at": _iso(d.created_at), "finished_at": _iso(d.finished_at),
    }


def _positive_int(text: str, name: str, maximum: int) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:
        raise BadRequest(f"{name} must be an integer from 1 to {maximum}.")
    return int(text)


@routes.get(DELIVERIES_PATH)
async def list_deliveries(request: web.Request) -> web.Response:
    status_text = request.query.get("status")
    status: DeliveryStatus | None = None
    if status_text is not None:
        try:
            status = DeliveryStatus(status_text)
        except ValueError:
            raise BadRequest("status must be one of pending, delivered, dead.") from None
    limit = _positive_int(request.query.get("limit", str(DEFAULT_LIMIT)), "limit", MAX_LIMIT)
    position = query_cursor(request, DELIVERIES_SCOPE, (int,))
    before = position[0] if position is not None else None
    page = await outbox.deliveries_page(status, limit + 1, before)
    more = len(page) > limit
    page = page[:limit]
    return web.json_response({
        "items": [delivery_json(view) for view in page],
        "next_cursor": (request.app[CURSORS].issue(DELIVERIES_SCOPE, page[-1].delivery.id)
                        if more and page else None),
    })


@routes.post(DELIVERIES_PATH + "/{id}/retry")
async def retry_delivery(request: web.Request) -> web.Response:
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_ID:
        raise NotFound("No webhook delivery has this id.")
    delivery_id = int(text)
    if not await outbox.retry_dead(delivery_id, utcnow()):
        view = await outbox.get_delivery(delivery_id)
        if view is None:
            raise NotFound("No webhook delivery has this id.")
        raise DeliveryNotDead(
            f"Only a dead delivery can be retried; this one is {view.delivery.status.value}.")
    dispatcher = request.app.get(DISPATCHER)
    if dispatcher is not None:
        dispatcher.wake()
    view = await outbox.get_delivery(delivery_id)
    if view is None:  # pending now, so never pruned; gone only if deleted by hand
        raise NotFound("No webhook delivery has this id.")
    return web.json_response(delivery_json(view), status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_routes(routes)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def dispatcher_ctx(app: web.Application) -> AsyncIterator[None]:
    """Run a dispatcher while the app runs, when webhooks are enabled (in `cleanup_ctx`
    after the database context, so it stops before the database closes; a delivery being
    sent at shutdown is handed back and sent again by the next dispatcher)."""
    outbox_ = app[OUTBOX]
    config = outbox_.config
    if not config.enabled:
        yield
        return
    metrics = app.get(METRICS)
    dispatcher = Dispatcher(
        config, worker_id(), clock=app[CLOCK].now,
        metrics=WebhookMetrics(metrics.registry) if metrics is not None else None)
    db.activate(app[DB_CONTEXT])
    dispatcher.start(app[DB_CONTEXT])
    app[DISPATCHER] = dispatcher
    outbox_.wake = dispatcher.wake
    try:
        yield
    finally:
        outbox_.wake = None
        await dispatcher.close()
