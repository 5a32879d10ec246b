"""Webhook test helpers: a signature-checking receiver, a settable clock, emitting and draining.

The receiver verifies every request with the `standardwebhooks` library (once per secret
the endpoint signs with) and validates the payload against the event schema; a request
that fails either check is recorded as bad and answered 400, so tests assert `bad == []`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
from aiohttp import web
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook

from service.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEvent
from service.store import sql
from service.webhooks import outbox
from service.webhooks.config import WebhooksConfig
from service.webhooks.events import PAYLOAD_SCHEMA, Event

WEBHOOK_TABLES = ("webhook_event", "webhook_delivery", "webhook_user_sequence",
                  "webhook_sync_health")
VALIDATOR = jsonschema_rs.validator_for(PAYLOAD_SCHEMA)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class Clock:
    """The dispatcher's scheduling clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Received:
    message_id: str
    timestamp: str
    payload: dict[str, Any]
    path: str


@dataclass
class Receiver:
    secrets: Sequence[str]
    status: int = 200
    got: list[Received] = field(default_factory=list)  # every verified request, any answer
    bad: list[str] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)  # requests by path
    server: TestServer | None = None
    port: int = 0
    # when set, each request is recorded in `stalled` and left unanswered until it is set
    stall: asyncio.Event | None = None
    stalled: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def delivered(self) -> list[Received]:
        """The requests answered 2xx (recorded by `handle`)."""
        return [r for r in self.got if r.path == "ok"]

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        body = await request.text()
        headers = dict(request.headers)
        signatures = headers.get("webhook-signature", "").split(" ")
        if len(signatures) != len(self.secrets):
            self.bad.append(f"{len(signatures)} signatures for {len(self.secrets)} secrets")
            return web.Response(status=400)
        for secret in self.secrets:  # each active secret verifies on its own
            try:
                Webhook(secret).verify(body, headers)
            except Exception as exc:
                self.bad.append(f"signature: {exc}")
                return web.Response(status=400)
        payload = json.loads(body)
        errors = [str(e) for e in VALIDATOR.iter_errors(payload)]
        if errors:
            self.bad.append(f"schema: {errors[:2]}")
            return web.Response(status=400)
        if self.stall is not None:
            self.stalled.append(headers["webhook-id"])
            self.arrived.set()
            await self.stall.wait()
        status = self.status
        self.got.append(Received(headers["webhook-id"], headers["webhook-timestamp"], payload,
                                 "ok" if 200 <= status < 300 else str(status)))
        if 300 <= status < 400:
            raise web.HTTPTemporaryRedirect("/elsewhere")
        return web.Response(status=status)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        app.router.add_post("/elsewhere", self.handle)
        return app

    async def start(self) -> None:
        self.server = TestServer(self.app(), host="127.0.0.1", port=self.port or None)
        await self.server.start_server()
        self.port = self.server.port or 0

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None


def config_for(receiver: Receiver, *endpoints: dict[str, Any], **settings: Any) -> WebhooksConfig:
    """Enabled, loopback allowed, one endpoint at the receiver unless others are given."""
    items = list(endpoints) or [{"id": "main", "url": receiver.url(),
                                 "secrets": list(receiver.secrets)}]
    values = {"enabled": True, "allow_private_targets": True, "endpoints": items, **settings}
    return WebhooksConfig.from_mapping(values)


async def emit(config: WebhooksConfig, clock: Clock, *events: Event) -> list[str | None]:
    """Each event in a transaction of its own (as a change's transaction would), at the
    time `clock` tells."""
    ids = []
    for event in events:
        async with sql.transaction(WebhookEvent) as connection:
            ids.append(await outbox.emit(connection, event, config.endpoints, clock.now))
    return ids


async def pending_count() -> int:
    return await WebhookDelivery.filter(status=DeliveryStatus.PENDING).count()


async def next_due(after: datetime) -> datetime | None:
    """The earliest retry time after `after` (deliveries due already wait on an earlier
    event of their user)."""
    row = await WebhookDelivery.filter(status=DeliveryStatus.PENDING,
                                       next_attempt_at__gt=after).order_by(
        "next_attempt_at").first()
    return row.next_attempt_at if row is not None else None


async def drain(dispatcher: Any, clock: Clock, rounds: int = 500) -> int:
    """Run the dispatcher, moving the clock to each next due time, until nothing is pending;
    the number of attempts made."""
    attempts = 0
    for _ in range(rounds):
        made = await dispatcher.run_once()
        attempts += made
        if made:
            continue
        if not await pending_count():
            return attempts
        due = await next_due(clock.now)
        assert due is not None, "pending deliveries, none claimable and none due later"
        clock.now = due
    raise AssertionError("deliveries still pending after the rounds allowed")
