"""Emit in the change's transaction, deliver signed, retry with backoff, keep each user's order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from tortoise.context import TortoiseContext

from service.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEvent, WebhookSyncHealth
from service.store import sql
from service.webhooks import events, outbox
from service.webhooks.config import WebhooksConfig
from service.webhooks.dispatcher import Dispatcher
from service.webhooks.events import Event
from tests.support.webhooks import Clock, Receiver, config_for, drain, emit, new_secret

AT = datetime(2026, 3, 1, tzinfo=UTC)


def dispatcher(config: WebhooksConfig, clock: Clock, name: str = "test") -> Dispatcher:
    return Dispatcher(config, name, clock=clock, rng=random.Random(7))


def user_events(user: str, count: int) -> list[Event]:
    return [events.session_expired(user, AT, f"{user} #{n}") for n in range(count)]


def order_of(received: list[object], user: str) -> list[str]:
    return [r.payload["data"]["reason"] for r in received  # type: ignore[attr-defined]
            if r.payload["data"]["user_id"] == user]  # type: ignore[attr-defined]


async def test_events_arrive_signed_with_every_secret_and_the_message_id(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    config = config_for(receiver)
    clock = Clock()
    ids = await emit(config, clock, events.session_connected("u1", AT, engine="garth"),
                     events.health_synced("u1", AT, 4, [AT.date()]))
    d = dispatcher(config, clock)
    try:
        assert await drain(d, clock) == 2
    finally:
        await d.close()
    assert receiver.bad == []
    assert [r.message_id for r in receiver.delivered()] == ids
    assert [r.payload["type"] for r in receiver.delivered()] == ["session.connected",
                                                                 "health.synced"]
    rows = await WebhookDelivery.all().order_by("id")
    assert [(r.status, r.attempts, r.last_status) for r in rows] == [
        (DeliveryStatus.DELIVERED, 1, 200)] * 2


async def test_endpoint_filters_and_one_message_id_per_event(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    sessions_only = {"id": "sessions", "url": receiver.url(), "secrets": list(receiver.secrets),
                     "events": ["session.connected", "session.disconnected"]}
    everything = {"id": "all", "url": receiver.url(), "secrets": list(receiver.secrets)}
    config = config_for(receiver, sessions_only, everything)
    clock = Clock()
    connected, synced = await emit(config, clock, events.session_connected("u1", AT),
                                   events.health_synced("u1", AT, 4, [AT.date()]))
    d = dispatcher(config, clock)
    try:
        await drain(d, clock)
    finally:
        await d.close()
    assert receiver.bad == []
    got = sorted(r.message_id for r in receiver.delivered())
    # the same webhook-id at each endpoint: it names the event
    assert got == sorted([connected, connected, synced])
    assert await WebhookDelivery.filter(endpoint="sessions").count() == 1


async def test_an_event_emitted_in_a_rolled_back_transaction_is_never_sent(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    config = config_for(receiver)
    clock = Clock()

    class ChangeFailed(Exception):
        pass

    with pytest.raises(ChangeFailed):
        async with sql.transaction(WebhookEvent) as connection:
            assert await outbox.emit(connection, events.session_disconnected("u1", AT),
                                     config.endpoints)
            raise ChangeFailed
    kept = await emit(config, clock, events.session_disconnected("u2", AT))
    d = dispatcher(config, clock)
    try:
        await drain(d, clock)
    finally:
        await d.close()
    assert await WebhookEvent.all().count() == 1
    assert [r.message_id for r in receiver.delivered()] == kept
    assert [r.payload["data"]["user_id"] for r in receiver.got] == ["u2"]


async def test_receiver_down_then_back_gets_everything_in_order_per_user(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    config = config_for(receiver)
    clock = Clock()
    emitted = [e for pair in zip(user_events("a", 5), user_events("b", 5), strict=True)
               for e in pair]
    await emit(config, clock, *emitted)
    d = dispatcher(config, clock)
    try:
        receiver.status = 503  # up but failing
        for _ in range(3):
            assert await d.run_once() == 2  # only the head of each user's queue
            clock.advance(3600)
        await receiver.stop()  # now refusing connections
        for _ in range(3):
            assert await d.run_once() == 2
            clock.advance(3600)
        assert receiver.delivered() == []
        rows = await WebhookDelivery.filter(status=DeliveryStatus.PENDING).order_by("id")
        assert len(rows) == 10
        assert {r.last_error for r in rows if r.attempts} == {"connection"}
        receiver.status = 200
        await receiver.start()  # back on the same port
        await drain(d, clock)
    finally:
        await d.close()
    assert receiver.bad == []
    assert order_of(receiver.delivered(), "a") == [f"a #{n}" for n in range(5)]
    assert order_of(receiver.delivered(), "b") == [f"b #{n}" for n in range(5)]
    # no event of a user was even tried before the one before it was delivered
    assert order_of(receiver.got, "a") == ["a #0"] * 3 + [f"a #{n}" for n in range(5)]
    assert len({r.message_id for r in receiver.delivered()}) == 10
    assert await WebhookDelivery.filter(status=DeliveryStatus.DELIVERED).count() == 10


async def test_retries_back_off_exponentially_then_the_delivery_is_dead(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    config = config_for(receiver, max_attempts=5, backoff_base_seconds=10)
    clock = Clock()
    start = clock.now
    first, second = await emit(config, clock, events.session_expired("u1", AT, "first"),
                               events.session_expired("u1", AT, "second"))
    receiver.status = 500
    d = dispatcher(config, clock)
    waits: list[float] = []
    try:
        for _ in range(5):
            assert await d.run_once() == 1
            row = await WebhookDelivery.get(sequence=1)
            if row.status == DeliveryStatus.PENDING:
                waits.append((row.next_attempt_at - clock.now).total_seconds())
                clock.now = row.next_attempt_at
        head = await WebhookDelivery.get(sequence=1)
        assert (head.status, head.attempts, head.last_status) == (DeliveryStatus.DEAD, 5, 500)
        # 10 s doubled each time, within the +-20 % jitter
        for n, wait in enumerate(waits):
            assert 10 * 2**n * 0.8 <= wait <= 10 * 2**n * 1.2
        # a dead event no longer holds back the user's next one
        receiver.status = 200
        await drain(d, clock)
    finally:
        await d.close()
    assert [r.message_id for r in receiver.delivered()] == [second]
    assert clock.now - start < timedelta(seconds=config.max_age_seconds)
    assert first not in [r.message_id for r in receiver.delivered()]


async def test_no_attempt_is_made_past_the_maximum_age(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    config = config_for(receiver, max_age_seconds=3600, backoff_base_seconds=1000,
                        backoff_max_seconds=1000)
    clock = Clock()
    await emit(config, clock, events.session_disconnected("u1", AT))
    receiver.status = 502
    d = dispatcher(config, clock)
    try:
        attempts = await drain(d, clock)
    finally:
        await d.close()
    row = await WebhookDelivery.get()
    assert row.status == DeliveryStatus.DEAD
    # attempts at 0 and about every 1000 s (+-20 %): the one past 3600 s is never made
    assert 3 <= attempts == row.attempts <= 4
    assert row.finished_at is not None
    assert row.finished_at - row.created_at <= timedelta(seconds=3600)


async def test_disabled_or_unwanted_events_write_nothing(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    disabled = outbox.Outbox(config_for(receiver, enabled=False))
    narrow = outbox.Outbox(config_for(receiver, {
        "url": receiver.url(), "secrets": [new_secret()], "events": ["sync.failing"]}))
    async with sql.transaction(WebhookEvent) as connection:
        assert await disabled.emit(connection, events.session_disconnected("u1", AT)) is None
        assert await narrow.emit(connection, events.session_disconnected("u1", AT)) is None
        assert await narrow.emit(connection, None) is None
    assert await WebhookEvent.all().count() == 0


async def test_sync_failing_after_n_failures_not_counting_429_then_recovered(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    box = outbox.Outbox(config_for(receiver, failing_after=3))
    emitted = []

    async def fail(rate_limited: bool = False, kind: str = "activities") -> None:
        async with sql.transaction(WebhookEvent) as connection:
            emitted.append(await box.sync_failed(connection, "u1", kind, 1, AT, rate_limited))

    async def succeed(kind: str = "activities") -> None:
        async with sql.transaction(WebhookEvent) as connection:
            emitted.append(await box.sync_succeeded(connection, "u1", kind, 2, AT))

    await succeed()  # never failed: nothing to recover from
    await fail()
    await fail(rate_limited=True)  # a 429 backoff neither counts nor resets
    await fail(kind="health")  # another kind counts on its own
    await fail()
    assert emitted == [None] * 5
    await fail()  # the third failure in a row
    await fail()  # still failing: announced once
    await succeed()
    await succeed()
    failing, recovered = emitted[5], emitted[7]
    assert failing and recovered and emitted[6] is None and emitted[8] is None
    types = [e.type for e in await WebhookEvent.all().order_by("sequence")]
    assert types == ["sync.failing", "sync.recovered"]
    assert await WebhookSyncHealth.filter(user_id="u1").values_list("kind", flat=True) == [
        "health"]


async def test_outcomes_written_together_are_each_fenced_by_their_own_claim(
        wh_db: TortoiseContext, receiver: Receiver) -> None:
    config = config_for(receiver)
    clock = Clock()
    await emit(config, clock, events.session_expired("u2", AT, "b"),
               events.session_expired("u1", AT, "a"))
    first = await outbox.claim("first", clock.now, 60, 10)
    assert sorted(c.user_id for c in first) == ["u1", "u2"]
    assert await outbox.claim("other", clock.now, 60, 10) == []  # both are claimed
    clock.advance(61)  # the claims expire; another dispatcher claims u2's delivery again
    [again] = await outbox.claim("second", clock.now, 60, 1)
    assert again.user_id == "u2"
    outcomes = [outbox.Outcome(c, DeliveryStatus.DELIVERED, clock.now, 200, None, clock.now)
                for c in first]
    kept = await outbox.finish_many(outcomes)
    [u1] = [c for c in first if c.user_id == "u1"]
    assert kept == {u1.id}  # the lost claim wrote nothing
    rows = {d.user_id: d for d in await WebhookDelivery.all()}
    assert (rows["u1"].status, rows["u1"].claimed_by) == (DeliveryStatus.DELIVERED, None)
    assert (rows["u2"].status, rows["u2"].claimed_by) == (DeliveryStatus.PENDING, "second")
    assert rows["u2"].attempts == again.attempts == 2
