"""The address guard at delivery time, the operator API and the webhook metrics."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry
from tortoise.context import TortoiseContext

from service import db
from service.api.cursors import CURSORS, Cursors
from service.api.middleware import error_response
from service.api.v1 import webhooks as api
from service.models.webhooks import DeliveryStatus, WebhookDelivery
from service.webhooks import events
from service.webhooks.dispatcher import Dispatcher
from service.webhooks.metrics import WebhookMetrics
from tests.support.webhooks import Clock, Receiver, config_for, drain, emit

AT = datetime(2026, 3, 1, tzinfo=UTC)


async def attempt_once(receiver: Receiver, url: str, allow_private: bool) -> WebhookDelivery:
    config = config_for(receiver, {"id": "main", "url": url, "secrets": list(receiver.secrets)},
                        allow_private_targets=allow_private)
    clock = Clock()
    await emit(config, clock, events.session_disconnected("u1", AT))
    dispatcher = Dispatcher(config, "test", clock=clock)
    try:
        assert await dispatcher.run_once() == 1
    finally:
        await dispatcher.close()
    return await WebhookDelivery.get()


async def test_a_loopback_address_is_refused_unless_allowed(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    row = await attempt_once(receiver, receiver.url(), allow_private=False)
    assert (row.status, row.last_error, row.last_status) == (DeliveryStatus.PENDING,
                                                             "refused", None)
    assert receiver.hits == {}


async def test_a_name_resolving_to_loopback_is_refused_when_connecting(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    row = await attempt_once(receiver, receiver.url(host="localhost"), allow_private=False)
    assert (row.status, row.last_error) == (DeliveryStatus.PENDING, "refused")
    assert receiver.hits == {}


async def test_loopback_is_delivered_when_private_targets_are_allowed(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    row = await attempt_once(receiver, receiver.url(host="localhost"), allow_private=True)
    assert row.status == DeliveryStatus.DELIVERED
    assert receiver.hits == {"/hook": 1} and receiver.bad == []


async def test_redirects_are_not_followed(wh_db: TortoiseContext, receiver: Receiver) -> None:
    receiver.status = 307
    row = await attempt_once(receiver, receiver.url(), allow_private=True)
    assert (row.status, row.last_status) == (DeliveryStatus.PENDING, 307)
    assert "redirects are not followed" in (row.last_error or "")
    assert receiver.hits == {"/hook": 1}  # never /elsewhere


# --- operator API -----------------------------------------------------------------------


def operator_app(ctx: TortoiseContext) -> web.Application:
    """The handlers behind a stand-in for the service's middleware (database, problems)."""

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        db.activate(ctx)
        try:
            return await handler(request)
        except Exception as exc:
            return error_response(request, exc)

    app = web.Application(middlewares=[edge])
    app[CURSORS] = Cursors([b"operator-api-test-cursor-key-32b"])
    api.add_routes(app)
    return app


async def test_operator_lists_pages_and_retries_dead_deliveries(
        wh_db: TortoiseContext, receiver: Receiver,
        aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]) -> None:
    config = config_for(receiver, max_attempts=1)
    clock = Clock()
    ids = await emit(config, clock, *(events.session_expired(f"u{n}", AT, "r")
                                      for n in range(3)))
    receiver.status = 500
    dispatcher = Dispatcher(config, "test", clock=clock, rng=random.Random(1))
    try:
        await drain(dispatcher, clock)
        client = await aiohttp_client(operator_app(wh_db))
        page = await (await client.get(f"{api.DELIVERIES_PATH}?status=dead&limit=2")).json()
        assert [item["message_id"] for item in page["items"]] == [ids[2], ids[1]]
        assert page["items"][0]["status"] == "dead" and page["items"][0]["last_status"] == 500
        assert "body" not in page["items"][0]
        rest = await (await client.get(
            f"{api.DELIVERIES_PATH}?status=dead&limit=2&cursor={page['next_cursor']}")).json()
        assert [item["message_id"] for item in rest["items"]] == [ids[0]]
        assert rest["next_cursor"] is None
        dead_id = rest["items"][0]["id"]
        retried = await client.post(f"{api.DELIVERIES_PATH}/{dead_id}/retry")
        assert retried.status == 202
        assert (await retried.json())["status"] == "pending"
        again = await client.post(f"{api.DELIVERIES_PATH}/{dead_id}/retry")
        assert again.status == 409
        assert again.content_type == "application/problem+json"
        receiver.status = 200
        await drain(dispatcher, clock)
    finally:
        await dispatcher.close()
    assert [r.message_id for r in receiver.delivered()] == [ids[0]]
    pending = await (await client.get(f"{api.DELIVERIES_PATH}?status=pending")).json()
    assert pending["items"] == []


async def test_operator_api_answers_bad_input_with_problems(
        wh_db: TortoiseContext,
        aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]) -> None:
    client = await aiohttp_client(operator_app(wh_db))
    # a delivery id is no cursor: only one this API signed opens a page
    for query in ("status=lost", "limit=0", "limit=501", "limit=x", "cursor=abc",
                  "cursor=99999999999999999999", "cursor=5", "cursor="):
        response = await client.get(f"{api.DELIVERIES_PATH}?{query}")
        assert response.status == 400, query
        assert response.content_type == "application/problem+json"
    for delivery_id in ("12345", "0", "x", "99999999999999999999"):
        response = await client.post(f"{api.DELIVERIES_PATH}/{delivery_id}/retry")
        assert response.status == 404, delivery_id


async def test_metrics_count_attempts_outcomes_lag_and_dead(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    registry = CollectorRegistry()
    metrics = WebhookMetrics(registry)
    config = config_for(receiver, max_attempts=2)
    clock = Clock()
    await emit(config, clock, events.session_disconnected("u1", AT),
               events.session_disconnected("u2", AT))
    receiver.status = 503
    dispatcher = Dispatcher(config, "test", clock=clock, metrics=metrics)
    try:
        assert await dispatcher.run_once() == 2
        clock.advance(600)
        await dispatcher.refresh_gauges()
        assert registry.get_sample_value("garmin_sync_webhook_outbox_lag_seconds") == 600
        await drain(dispatcher, clock)
        await dispatcher.refresh_gauges()
    finally:
        await dispatcher.close()

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(f"garmin_sync_webhook_{name}", labels)

    assert sample("attempts_total", outcome="5xx") == 4
    assert sample("deliveries_total", outcome="retry") == 2
    assert sample("deliveries_total", outcome="dead") == 2
    assert sample("deliveries_total", outcome="delivered") == 0
    assert sample("dead_deliveries") == 2
    assert sample("outbox_lag_seconds") == 0
