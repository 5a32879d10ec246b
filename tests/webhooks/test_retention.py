"""Outbox retention: finished deliveries and their events are pruned, in bounded batches, by
every dispatcher at once if need be; pending deliveries and the events they carry never."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tortoise.context import TortoiseContext

from service.api.v1.webhooks import DELIVERIES_PATH, DISPATCHER
from service.clock import ManualClock
from service.config import ConfigError
from service.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEvent
from service.store import sql
from service.webhooks import events, outbox, retention
from service.webhooks.config import WebhooksConfig
from service.webhooks.dispatcher import Dispatcher
from service.webhooks.metrics import WebhookMetrics
from service.webhooks.outbox import new_message_id
from service.webhooks.retention import Pruned
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import API_KEY, use_db
from tests.support.waiting import eventually
from tests.support.webhooks import Receiver, config_for

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
DELIVERED, DEAD, PENDING = DeliveryStatus.DELIVERED, DeliveryStatus.DEAD, DeliveryStatus.PENDING
SEQUENCE = count(1)


def settings(**values: Any) -> WebhooksConfig:
    return WebhooksConfig.from_mapping({"enabled": True, **values})


async def add_event(at: datetime, *deliveries: tuple[DeliveryStatus, datetime],
                    user: str = "u1") -> tuple[int, list[int]]:
    """An event created at `at` with one delivery per (status, time): a finished delivery's
    time is when it finished, a pending one's when it is next due. Rows as the outbox
    writes them (a finished delivery's `next_attempt_at` is when it finished)."""
    sequence = next(SEQUENCE)
    event = await WebhookEvent.create(message_id=new_message_id(), user_id=user,
                                      type="session.expired", sequence=sequence, body="{}",
                                      created_at=at)
    ids = []
    for index, (status, when) in enumerate(deliveries):
        row = await WebhookDelivery.create(
            event_id=event.id, endpoint=f"endpoint-{index}", user_id=user, sequence=sequence,
            status=status, attempts=1, next_attempt_at=when, created_at=at,
            finished_at=when if status != PENDING else None, last_status=200)
        ids.append(row.id)
    return event.id, ids


async def event_ids() -> list[int]:
    return sorted(await WebhookEvent.all().values_list("id", flat=True))


async def delivery_ids() -> list[int]:
    return sorted(await WebhookDelivery.all().values_list("id", flat=True))


async def test_delivered_rows_past_their_retention_go_with_their_events(
        wh_db: TortoiseContext) -> None:
    config = settings(retention_delivered_days=7)
    old, _ = await add_event(NOW - 10 * DAY, (DELIVERED, NOW - 8 * DAY))
    # queued long ago, delivered recently: its age counts from when it was delivered
    recent, recent_deliveries = await add_event(NOW - 20 * DAY, (DELIVERED, NOW - 6 * DAY))
    assert await retention.prune(config, NOW) == Pruned(delivered=1, dead=0, events=1)
    assert await event_ids() == [recent]
    assert await delivery_ids() == recent_deliveries
    assert old not in await event_ids()
    assert await retention.prune(config, NOW) == Pruned()  # nothing more, nothing twice


async def test_dead_rows_stay_until_their_longer_retention(wh_db: TortoiseContext) -> None:
    config = settings(retention_delivered_days=7, retention_dead_days=30)
    dead_event, dead = await add_event(NOW - 8 * DAY, (DEAD, NOW - 8 * DAY))
    await add_event(NOW - 8 * DAY, (DELIVERED, NOW - 8 * DAY))
    assert await retention.prune(config, NOW) == Pruned(delivered=1, dead=0, events=1)
    assert (await event_ids(), await delivery_ids()) == ([dead_event], dead)
    assert await retention.prune(config, NOW + 21 * DAY) == Pruned()
    assert await retention.prune(config, NOW + 22 * DAY + HOUR) == Pruned(0, 1, 1)
    assert await event_ids() == []


async def test_pending_deliveries_and_their_events_are_never_pruned(
        wh_db: TortoiseContext) -> None:
    config = settings(retention_delivered_days=1, retention_dead_days=1)
    # one endpoint took the event long ago, the other still retries it: the event stays
    shared, (taken, retrying) = await add_event(NOW - 90 * DAY, (DELIVERED, NOW - 60 * DAY),
                                                (PENDING, NOW - 59 * DAY))
    waiting, (due_later,) = await add_event(NOW - 90 * DAY, (PENDING, NOW + DAY))
    assert await retention.prune(config, NOW) == Pruned(delivered=1, dead=0, events=0)
    assert await event_ids() == sorted([shared, waiting])
    assert await delivery_ids() == sorted([retrying, due_later])
    assert taken not in await delivery_ids()
    # once delivered, the last delivery takes its event along after the retention
    await WebhookDelivery.filter(id=retrying).update(status=DELIVERED, next_attempt_at=NOW,
                                                     finished_at=NOW)
    assert await retention.prune(config, NOW + 2 * DAY) == Pruned(1, 0, 1)
    assert await event_ids() == [waiting]
    assert await delivery_ids() == [due_later]


async def test_a_retention_of_zero_keeps_rows_forever(wh_db: TortoiseContext) -> None:
    await add_event(NOW - 400 * DAY, (DELIVERED, NOW - 400 * DAY))
    await add_event(NOW - 400 * DAY, (DEAD, NOW - 400 * DAY))
    assert await retention.prune(settings(retention_delivered_days=0, retention_dead_days=0),
                                 NOW) == Pruned()
    assert not retention.enabled(settings(retention_delivered_days=0, retention_dead_days=0))
    assert await retention.prune(settings(retention_dead_days=0), NOW) == Pruned(1, 0, 1)
    assert len(await delivery_ids()) == 1


async def test_each_batch_deletes_at_most_the_batch_size_oldest_first(
        wh_db: TortoiseContext, monkeypatch: pytest.MonkeyPatch) -> None:
    finished = [NOW - (20 + n) * DAY for n in range(7)]
    for when in finished:
        await add_event(when, (DELIVERED, when))
    kept, _ = await add_event(NOW, (DELIVERED, NOW))
    assert await retention.prune_batch(DELIVERED, NOW - 7 * DAY, 3) == (3, 3)
    left = await WebhookDelivery.filter(status=DELIVERED).order_by("finished_at").values_list(
        "finished_at", flat=True)
    assert left == [*sorted(finished)[3:], NOW]  # the three oldest went first

    batches: list[int] = []
    real_batch = retention.prune_batch

    async def counted(status: DeliveryStatus, cutoff: datetime, limit: int) -> tuple[int, int]:
        deleted = await real_batch(status, cutoff, limit)
        assert deleted[0] <= limit == 3
        batches.append(deleted[0])
        return deleted

    monkeypatch.setattr(retention, "prune_batch", counted)
    assert await retention.prune(settings(retention_batch_size=3), NOW) == Pruned(4, 0, 4)
    assert batches == [3, 1, 0]  # delivered: a full batch, a short one; dead: none
    assert await event_ids() == [kept]


def test_the_batch_size_is_bounded() -> None:
    with pytest.raises(ConfigError) as refused:
        settings(retention_batch_size=5001)
    assert refused.value.key == "webhooks.retention_batch_size"
    with pytest.raises(ConfigError):
        settings(retention_delivered_days=-1)


async def test_concurrent_prunes_delete_each_row_once_and_leave_no_event_behind(
        wh_db: TortoiseContext) -> None:
    # two deliveries per event, finished a second apart, one row per batch: concurrent
    # batches delete an event's two deliveries, and the event must go with the later one
    for n in range(40):
        finished = NOW - 10 * DAY - n * HOUR
        await add_event(finished, (DELIVERED, finished), (DELIVERED, finished + SECOND),
                        user=f"u{n % 3}")
        await add_event(finished, (DEAD, finished - 30 * DAY), (DEAD, finished - 30 * DAY))
    config = settings(retention_batch_size=1)
    results = await asyncio.gather(*(retention.prune(config, NOW) for _ in range(4)))
    assert sum(r.delivered for r in results) == 80
    assert sum(r.dead for r in results) == 80
    assert sum(r.events for r in results) == 80
    assert (await event_ids(), await delivery_ids()) == ([], [])
    assert await asyncio.gather(retention.prune(config, NOW),
                                retention.prune(config, NOW)) == [Pruned(), Pruned()]


async def test_rows_the_dispatcher_finished_are_pruned_by_its_loop_on_its_clock(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    clock = ManualClock(NOW)
    config = config_for(receiver, retention_delivered_days=7, retention_interval_seconds=3600,
                        poll_seconds=0.02)
    for n in range(3):
        async with sql.transaction(WebhookEvent) as connection:
            await outbox.emit(connection, events.session_disconnected(f"u{n}", NOW),
                              config.endpoints, clock.now())
    registry = CollectorRegistry()
    dispatcher = Dispatcher(config, "test", clock=clock.now, rng=random.Random(3),
                            metrics=WebhookMetrics(registry))
    try:
        assert await dispatcher.run_once() == 3
        assert len(receiver.delivered()) == 3
        assert await dispatcher.prune() == Pruned()  # delivered just now: kept
        dispatcher.start()
        clock.advance(7 * 86_400 + 60)
        dispatcher.wake()

        async def empty() -> bool:
            return not await delivery_ids() and not await event_ids()

        await eventually(empty, what="the outbox pruned by the dispatcher's loop")
    finally:
        await dispatcher.close()
    for kind, rows in (("delivered", 3), ("event", 3), ("dead", 0)):
        assert registry.get_sample_value("garmin_sync_webhook_pruned_rows_total",
                                         {"kind": kind}) == rows


# --- the app: its clock, the operator API and the metric -----------------------------------


async def test_the_app_prunes_on_its_clock_and_answers_404_for_pruned_ids(
        make_config: MakeConfig, start_api: StartApi, receiver: Receiver) -> None:
    clock = ManualClock(NOW)
    hooks = {"enabled": True, "allow_private_targets": True, "poll_seconds": 0.02,
             "retention_interval_seconds": 3600,
             "endpoints": [{"id": "endpoint-0", "url": receiver.url(),
                            "secrets": list(receiver.secrets)}]}
    api = await start_api(make_config(sync={"enabled": False}, webhooks=hooks), clock)
    use_db(api)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    # oldest first: pending (due in ten days), dead and delivered just within their
    # retention, then a delivered one of today
    _, (pending,) = await add_event(NOW - 90 * DAY, (PENDING, NOW + 10 * DAY))
    _, (dead,) = await add_event(NOW - 40 * DAY, (DEAD, NOW - 29 * DAY - 12 * HOUR))
    _, (delivered,) = await add_event(NOW - 7 * DAY, (DELIVERED, NOW - 6 * DAY - 12 * HOUR))
    _, (today,) = await add_event(NOW, (DELIVERED, NOW))
    first = await (await api.client.get(f"{DELIVERIES_PATH}?limit=2", headers=headers)).json()
    assert [item["id"] for item in first["items"]] == [today, delivered]

    clock.advance(86_400)  # both are past their retention now
    api.app[DISPATCHER].wake()

    async def pruned() -> bool:
        return await delivery_ids() == [pending, today]

    await eventually(pruned, what="the delivered and dead rows pruned")
    # the cursor issued before still continues after its (pruned) position
    rest = await (await api.client.get(f"{DELIVERIES_PATH}?limit=2&cursor={first['next_cursor']}",
                                       headers=headers)).json()
    assert [item["id"] for item in rest["items"]] == [pending]
    assert rest["next_cursor"] is None
    for gone in (dead, delivered):
        response = await api.client.post(f"{DELIVERIES_PATH}/{gone}/retry", headers=headers)
        assert response.status == 404
        assert response.content_type == "application/problem+json"
    metrics = await (await api.client.get("/metrics")).text()
    assert 'garmin_sync_webhook_pruned_rows_total{kind="delivered"} 1.0' in metrics
    assert 'garmin_sync_webhook_pruned_rows_total{kind="dead"} 1.0' in metrics
    assert 'garmin_sync_webhook_pruned_rows_total{kind="event"} 2.0' in metrics
