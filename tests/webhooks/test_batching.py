"""Claims and outcomes in batches: a claim takes several rounds of POSTs, which still run at
most `concurrency` at once, and the outcomes of POSTs that end together, up to a claim's
worth, are one write."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from tortoise.context import TortoiseContext

from service.models.webhooks import DeliveryStatus, WebhookDelivery
from service.webhooks import dispatcher as dispatching
from service.webhooks import events, outbox
from service.webhooks.config import Endpoint
from service.webhooks.dispatcher import Dispatcher, claim_depth
from service.webhooks.outbox import Claimed
from tests.support.waiting import eventually
from tests.support.webhooks import Clock, Receiver, config_for, emit

AT = datetime(2026, 3, 1, tzinfo=UTC)


class GatedPosts:
    """Stands in for the dispatcher's POST: each waits for `gate`, then answers 204; counts
    how many run at once."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.running = 0
        self.most = 0
        self.sent: list[str] = []

    async def __call__(self, endpoint: Endpoint, claimed: Claimed) -> tuple[int | None, None]:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        self.sent.append(claimed.user_id)
        return 204, None


async def _started(wh_db: TortoiseContext, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
                   users: int, post: Callable[[Endpoint, Claimed], Awaitable[Any]],
                   **settings: Any) -> Dispatcher:
    """A running dispatcher whose POSTs are `post`, one event queued for each of `users`
    users (`u0`, `u1`, ...)."""
    config = config_for(receiver, **settings)
    clock = Clock()
    await emit(config, clock, *(events.session_disconnected(f"u{n}", AT) for n in range(users)))
    dispatcher = Dispatcher(config, "test", clock=clock)
    monkeypatch.setattr(dispatcher, "_post", post)
    dispatcher.start(wh_db)
    return dispatcher


class CountedWrites:
    """`outbox.finish_many`, recording the size of each write."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.inner = outbox.finish_many

    async def __call__(self, outcomes: Sequence[outbox.Outcome]) -> set[int]:
        self.sizes.append(len(outcomes))
        return await self.inner(outcomes)


def test_a_claim_takes_as_many_rounds_as_fit_in_half_its_lease(receiver: Receiver) -> None:
    def depth(**settings: Any) -> int:
        return claim_depth(config_for(receiver, **settings))

    assert depth() == 3  # the defaults: a 60 s lease, 10 s timeouts
    assert depth(lease_seconds=20, timeout_seconds=10) == 1
    assert depth(lease_seconds=39, timeout_seconds=10) == 1
    assert depth(lease_seconds=600, timeout_seconds=1,
                 connect_timeout_seconds=1) == dispatching.MAX_DEPTH


async def test_a_claim_fills_several_rounds_and_posts_stay_bounded(
        wh_db: TortoiseContext, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    posts = GatedPosts()
    # depth 3: claims of up to 6
    dispatcher = await _started(wh_db, receiver, monkeypatch, 10, posts, concurrency=2)
    try:
        await eventually(lambda: posts.running == 2, what="two POSTs")
        claimed = await WebhookDelivery.filter(claimed_by__isnull=False).count()
        assert claimed == 6
        posts.gate.set()
        await eventually(lambda: _delivered(10), what="every delivery")
    finally:
        await dispatcher.close()
    assert posts.most == 2
    assert sorted(posts.sent) == sorted(f"u{n}" for n in range(10))


async def _delivered(count: int) -> bool:
    return await WebhookDelivery.filter(status=DeliveryStatus.DELIVERED).count() == count


@pytest.mark.parametrize("posts_at_once", [1, 4])
async def test_outcomes_of_posts_that_end_together_are_one_write(
        wh_db: TortoiseContext, receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
        posts_at_once: int) -> None:
    # a long gathering window: only "every POST has ended" or a full batch ends a wait
    monkeypatch.setattr(dispatching, "OUTCOMES_GATHER_SECONDS", 60)
    writes = CountedWrites()
    monkeypatch.setattr(outbox, "finish_many", writes)
    config = config_for(receiver, concurrency=4)
    clock = Clock()
    await emit(config, clock, *(events.session_disconnected(f"u{n}", AT)
                                for n in range(posts_at_once)))
    posts = GatedPosts()
    dispatcher = Dispatcher(config, "test", clock=clock)
    monkeypatch.setattr(dispatcher, "_post", posts)
    try:
        run = asyncio.ensure_future(dispatcher.run_once())
        await eventually(lambda: posts.running == posts_at_once, what="the POSTs")
        posts.gate.set()
        async with asyncio.timeout(10):  # a lone outcome is not held for the window
            assert await run == posts_at_once
    finally:
        await dispatcher.close()
    assert writes.sizes == [posts_at_once]
    assert await _delivered(posts_at_once)


class SteppedPosts:
    """Stands in for the dispatcher's POST: each waits for its user's gate, then answers
    204; `running` holds the users whose POST is under way."""

    def __init__(self) -> None:
        self.gates: dict[str, asyncio.Event] = {}
        self.running: set[str] = set()

    async def __call__(self, endpoint: Endpoint, claimed: Claimed) -> tuple[int | None, None]:
        self.running.add(claimed.user_id)
        try:
            await self.gates.setdefault(claimed.user_id, asyncio.Event()).wait()
        finally:
            self.running.discard(claimed.user_id)
        return 204, None

    async def end(self, user: str, then_running: set[str]) -> None:
        self.gates.setdefault(user, asyncio.Event()).set()
        await eventually(lambda: self.running == then_running, what=f"POSTs {then_running}")


async def test_outcomes_wait_for_the_rounds_still_sending_up_to_a_claims_worth(
        wh_db: TortoiseContext, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two rounds of two POSTs that overlap: while one of them is still sending, an outcome
    waits, past `concurrency` of them, and the four are one write."""
    monkeypatch.setattr(dispatching, "OUTCOMES_GATHER_SECONDS", 60)
    writes = CountedWrites()
    monkeypatch.setattr(outbox, "finish_many", writes)
    posts = SteppedPosts()
    # depth 3: room for 6
    dispatcher = await _started(wh_db, receiver, monkeypatch, 4, posts, concurrency=2,
                                poll_seconds=3600)
    try:
        await eventually(lambda: posts.running == {"u0", "u1"}, what="the first round")
        await posts.end("u0", {"u1", "u2"})
        await posts.end("u1", {"u2", "u3"})
        await posts.end("u2", {"u3"})
        await posts.end("u3", set())
        await eventually(lambda: _delivered(4), what="4 deliveries")
    finally:
        await dispatcher.close()
    assert writes.sizes == [4]


# --- when the dispatcher claims again -------------------------------------------------------
# An hour's poll: whatever is delivered here was claimed because a delivery ended.


class CountedClaims:
    """`outbox.claim`, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.inner = outbox.claim

    async def __call__(self, owner: str, now: datetime, lease_seconds: float,
                       limit: int) -> list[Claimed]:
        self.calls += 1
        return await self.inner(owner, now, lease_seconds, limit)


async def _claims_to_deliver(wh_db: TortoiseContext, receiver: Receiver,
                             monkeypatch: pytest.MonkeyPatch, users: list[str],
                             concurrency: int) -> tuple[int, list[str | None]]:
    """Emit one event for each of `users` (in order), dispatch until all are delivered; the
    number of claims that took, and the events' message ids in emitting order."""
    claims = CountedClaims()
    monkeypatch.setattr(outbox, "claim", claims)
    config = config_for(receiver, concurrency=concurrency, poll_seconds=3600)
    clock = Clock()
    ids = await emit(config, clock, *(events.session_disconnected(user, AT) for user in users))
    dispatcher = Dispatcher(config, "test", clock=clock)
    dispatcher.start(wh_db)
    try:
        await eventually(lambda: _delivered(len(users)), what=f"{len(users)} deliveries")
    finally:
        await dispatcher.close()
    return claims.calls, ids


async def test_a_claim_that_left_nothing_behind_is_not_repeated_as_deliveries_end(
        wh_db: TortoiseContext, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    users = [f"u{n}" for n in range(5)]  # room for 12
    claims, _ = await _claims_to_deliver(wh_db, receiver, monkeypatch, users, concurrency=4)
    assert claims == 1


async def test_a_users_queued_deliveries_follow_each_other_without_the_poll(
        wh_db: TortoiseContext, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    # one claim per delivery: each takes the user's next once the one before has ended
    claims, ids = await _claims_to_deliver(wh_db, receiver, monkeypatch, ["u1"] * 4,
                                           concurrency=4)
    assert claims >= 4
    assert [got.message_id for got in receiver.delivered()] == ids


async def test_a_backlog_larger_than_a_claim_drains_without_the_poll(
        wh_db: TortoiseContext, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    users = [f"u{n}" for n in range(10)]  # room for 3
    claims, _ = await _claims_to_deliver(wh_db, receiver, monkeypatch, users, concurrency=1)
    assert claims >= 4
