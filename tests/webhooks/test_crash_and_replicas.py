"""A dispatcher killed mid-delivery, one shut down mid-delivery, and several at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from tortoise.context import TortoiseContext

from service import db
from service.models.webhooks import DeliveryStatus, WebhookDelivery
from service.webhooks import events
from service.webhooks.dispatcher import Dispatcher
from tests.support.webhooks import Clock, Receiver, config_for, emit

AT = datetime(2026, 3, 1, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


async def all_delivered(count: int, timeout: float) -> None:
    """Wait until `count` deliveries are recorded DELIVERED."""
    async with asyncio.timeout(timeout):
        while await WebhookDelivery.filter(status=DeliveryStatus.DELIVERED).count() < count:
            await asyncio.sleep(0.05)


async def test_a_sigkilled_dispatcher_s_delivery_is_sent_again_with_the_same_id(
        wh_db: TortoiseContext, database_url: str, receiver: Receiver) -> None:
    values = {"enabled": True, "allow_private_targets": True, "poll_seconds": 0.05,
              "endpoints": [{"id": "main", "url": receiver.url(),
                             "secrets": list(receiver.secrets)}]}
    config = config_for(receiver)
    clock = Clock()
    [message_id] = await emit(config, clock, events.session_disconnected("u1", AT))
    receiver.stall = asyncio.Event()
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.webhooks.dispatcher_process", database_url],
        cwd=ROOT, env={**os.environ, "WEBHOOKS_CONFIG": json.dumps(values)})
    try:
        async with asyncio.timeout(60):
            await receiver.arrived.wait()  # the POST is in flight: kill the sender now
    finally:
        child.send_signal(signal.SIGKILL)
        await asyncio.to_thread(child.wait)
    assert child.returncode == -signal.SIGKILL
    receiver.stall.set()  # let the orphaned handler finish; its caller is gone
    receiver.stall = None
    row = await WebhookDelivery.get()
    assert row.status == DeliveryStatus.PENDING and row.attempts == 1
    assert row.claimed_by is not None and row.claimed_by.startswith("doomed/")
    survivor = Dispatcher(config, "survivor", clock=clock)
    try:
        clock.now = datetime.now(UTC)
        assert await survivor.run_once() == 0  # the dead dispatcher's claim still holds
        clock.advance(config.lease_seconds + 1)
        assert await survivor.run_once() == 1
    finally:
        await survivor.close()
    assert receiver.stalled == [message_id]
    assert [r.message_id for r in receiver.delivered()] == [message_id]
    assert receiver.bad == []
    row = await WebhookDelivery.get()
    assert (row.status, row.attempts, row.claimed_by) == (DeliveryStatus.DELIVERED, 2, None)


async def test_a_dispatcher_shut_down_mid_delivery_hands_it_back_at_once(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    config = config_for(receiver, poll_seconds=0.05)
    clock = Clock()
    [message_id] = await emit(config, clock, events.session_disconnected("u1", AT))
    receiver.stall = asyncio.Event()
    first = Dispatcher(config, "first", clock=clock)
    first.start(wh_db)
    try:
        async with asyncio.timeout(30):
            await receiver.arrived.wait()
    finally:
        await first.close()
    receiver.stall.set()
    receiver.stall = None
    row = await WebhookDelivery.get()
    assert (row.status, row.claimed_by, row.last_error) == (
        DeliveryStatus.PENDING, None, "interrupted at shutdown")
    second = Dispatcher(config, "second", clock=clock)
    try:
        assert await second.run_once() == 1  # no wait for a claim to expire
    finally:
        await second.close()
    assert [r.message_id for r in receiver.delivered()] == [message_id]


async def test_several_dispatchers_deliver_everything_once_in_order(
        wh_db: TortoiseContext, database_url: str, receiver: Receiver) -> None:
    """Replicas: each dispatcher has a database connection pool of its own."""
    config = config_for(receiver, poll_seconds=0.02, concurrency=4)
    clock = Clock()
    users = [f"user-{n}" for n in range(8)]
    per_user = 12
    emitted = [events.session_expired(user, AT, f"{user} #{n}")
               for n in range(per_user) for user in users]
    await emit(config, clock, *emitted)
    contexts = [await db.open_context(database_url) for _ in range(3)]
    dispatchers = [Dispatcher(config, f"replica-{n}") for n in range(3)]
    try:
        for dispatcher, ctx in zip(dispatchers, contexts, strict=True):
            dispatcher.start(ctx)
        await all_delivered(len(emitted), timeout=120)
    finally:
        for dispatcher in dispatchers:
            await dispatcher.close()
        for ctx in contexts:
            await db.close_context(ctx)
    assert receiver.bad == []
    delivered = receiver.delivered()
    assert len(delivered) == len(emitted)  # no duplicates without a crash
    assert len({r.message_id for r in delivered}) == len(emitted)
    for user in users:
        reasons = [r.payload["data"]["reason"] for r in delivered
                   if r.payload["data"]["user_id"] == user]
        assert reasons == [f"{user} #{n}" for n in range(per_user)]
    assert await WebhookDelivery.filter(attempts__gt=1).count() == 0
