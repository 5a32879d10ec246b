"""The wired feature: the app emits each event with the change it reports, and its own
dispatcher delivers it, signed, to a verifying receiver (tests/webhooks/conftest.py). The
receiver is each test's first fixture, so it stops only after the app and its dispatcher.

Absence is checked without waiting out time: a user's events reach an endpoint in commit
order, so once a later event arrived, an earlier one that was never sent cannot come; the
outbox itself is read too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from service.models import Activity, DailyHealth, SyncCursor
from service.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEvent
from service.sandbox import Fault
from service.store import sql
from tests.support.aliases import MakeConfig
from tests.support.app import ALICE, Api, Sandbox, connect, drain, sync_now, use_db
from tests.support.waiting import eventually
from tests.support.webhooks import Receiver

USER = "user-1"


def hooks(receiver: Receiver, **settings: Any) -> dict[str, Any]:
    """The `webhooks` section: enabled, one endpoint at the receiver (on loopback)."""
    return {"enabled": True, "allow_private_targets": True, "poll_seconds": 0.05,
            "endpoints": [{"id": "main", "url": receiver.url(),
                           "secrets": list(receiver.secrets)}], **settings}


def delivered(receiver: Receiver, user: str = USER) -> list[dict[str, Any]]:
    return [r.payload for r in receiver.delivered() if r.payload["data"]["user_id"] == user]


async def types_arrived(receiver: Receiver, count: int, user: str = USER) -> list[str]:
    """The user's delivered event types, once at least `count` arrived."""
    def arrived() -> list[str] | None:
        types = [p["type"] for p in delivered(receiver, user)]
        return types if len(types) >= count else None

    return await eventually(arrived, 30, f"{count} event(s) for {user}")


async def stored_types(api: Api, user: str = USER) -> list[str]:
    use_db(api)
    return [row.type for row in await WebhookEvent.filter(user_id=user).order_by("sequence")]


async def test_login_syncs_and_disconnect_each_send_their_event(
    receiver: Receiver, make_config: MakeConfig, start_api: Callable[..., Any],
    sandbox: Sandbox,
) -> None:
    api: Api = await start_api(make_config(webhooks=hooks(receiver)))
    await connect(api, sandbox, USER, ALICE, activities_per_day=2, history_days=5)
    assert await types_arrived(receiver, 1) == ["session.connected"]
    connected = delivered(receiver)[0]["data"]
    assert connected["engine"] == "garth" and connected["connected_at"]

    [job] = await sync_now(api, USER, "activities")
    assert job["status"] == "SUCCESS", job
    assert (await types_arrived(receiver, 2))[1] == "activities.synced"
    data = delivered(receiver)[1]["data"]
    use_db(api)
    stored = sorted(await Activity.filter(user_id=USER).values_list("garmin_activity_id",
                                                                    flat=True))
    assert stored, "the sandbox served no activity"
    assert (data["job_id"], data["inserted"], data["updated"]) == (job["id"], len(stored), 0)
    assert sorted(data["activity_ids"]) == stored and data["activity_ids_truncated"] is False

    # the overlap days again, with the same activities: written, but nothing changed
    [again] = await sync_now(api, USER, "activities")
    assert again["status"] == "SUCCESS" and again["items_upserted"] > 0, again
    [health] = await sync_now(api, USER, "health")
    assert health["status"] == "SUCCESS", health
    # the health event follows the first activities event: the second job sent nothing
    assert (await types_arrived(receiver, 3))[:3] == [
        "session.connected", "activities.synced", "health.synced"]
    days = sorted(str(day) for day in await DailyHealth.filter(user_id=USER).values_list(
        "calendar_date", flat=True))
    assert delivered(receiver)[2]["data"]["dates"] == days
    assert delivered(receiver)[2]["data"]["job_id"] == health["id"]

    assert (await api.delete(USER)).status == 204
    assert await types_arrived(receiver, 4) == [
        "session.connected", "activities.synced", "health.synced", "session.disconnected"]
    assert (await api.delete(USER)).status == 204  # nothing left to remove: no event
    assert await stored_types(api) == [
        "session.connected", "activities.synced", "health.synced", "session.disconnected"]
    assert receiver.bad == []
    assert len({r.message_id for r in receiver.delivered()}) == len(receiver.delivered())


async def test_a_sync_jobs_events_ride_on_the_jobs_own_statements(
    receiver: Receiver, make_config: MakeConfig, start_api: Callable[..., Any],
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On PostgreSQL a job's event costs no statement of its own (`sql.with_next`): none
    runs alone while the job stores its data. SQLite writes events at the commit."""
    api: Api = await start_api(make_config(webhooks=hooks(receiver)))
    await connect(api, sandbox, USER, ALICE)
    alone: list[str] = []
    run_alone = sql._run_alone

    async def spy(connection: Any, ctes: sql.Sql, values: list[Any]) -> None:
        alone.append(ctes.text)
        await run_alone(connection, ctes, values)

    monkeypatch.setattr(sql, "_run_alone", spy)
    for kind in ("activities", "health"):
        [job] = await sync_now(api, USER, kind)
        assert job["status"] == "SUCCESS", job
    assert (await types_arrived(receiver, 3))[1:] == ["activities.synced", "health.synced"]
    assert alone == []


async def test_a_session_garmin_revokes_during_scheduled_syncs_expires_with_one_event(
    receiver: Receiver, make_config: MakeConfig, start_api: Callable[..., Any],
    sandbox: Sandbox,
) -> None:
    config = make_config(webhooks=hooks(receiver), sync={
        "enabled": True, "tick_seconds": 0.05, "initial_spread_seconds": 0,
        "backfill_days": 2, "jitter_fraction": 0, "activities_interval_minutes": 0.01,
        "health_interval_minutes": 0.01})
    api: Api = await start_api(config)
    await connect(api, sandbox, USER, ALICE, activities_per_day=1, history_days=2)
    await types_arrived(receiver, 3)  # connected, then the first scheduled syncs' data
    sandbox.state.revoke_oauth1(ALICE)
    sandbox.state.expire_access_tokens(ALICE)

    async def expired() -> bool:
        use_db(api)
        cursors = await SyncCursor.filter(user_id=USER)
        return bool(cursors) and all(c.next_sync_at is None for c in cursors)

    await eventually(expired, 30, "the scheduled syncs to meet the revoked session")
    status = await (await api.status(USER, refresh=True)).json()
    assert status["status"] == "EXPIRED", status
    types = await types_arrived(receiver, 4)
    assert await stored_types(api) == types  # every stored event was delivered
    assert types.count("session.expired") == 1 and types[-1] == "session.expired", types
    expiry = delivered(receiver)[-1]["data"]
    assert expiry["reason"]
    # a new login (once the run that met the rejection let the user go), and its event,
    # come after the expiry
    await drain(api)
    assert (await api.login(USER, ALICE)).status == 200
    assert (await types_arrived(receiver, len(types) + 1))[len(types)] == "session.connected"
    assert receiver.bad == []


async def test_failures_send_failing_once_and_the_next_success_recovered(
    receiver: Receiver, make_config: MakeConfig, start_api: Callable[..., Any],
    sandbox: Sandbox,
) -> None:
    api: Api = await start_api(make_config(webhooks=hooks(receiver, failing_after=2)))
    await connect(api, sandbox, USER, ALICE)
    await types_arrived(receiver, 1)
    sandbox.state.set_fault(ALICE, "api", Fault(status=503))
    for _ in range(3):  # a 5xx backoff does not hold a manual sync back
        [job] = await sync_now(api, USER, "health")
        assert job["status"] == "FAILED", job
    sandbox.state.clear_fault(ALICE, "api")
    [job] = await sync_now(api, USER, "health")
    assert job["status"] == "SUCCESS", job

    types = await types_arrived(receiver, 4)
    assert types == ["session.connected", "sync.failing", "health.synced", "sync.recovered"]
    failing, _, recovered = delivered(receiver)[1:]
    assert (failing["data"]["kind"], failing["data"]["consecutive_failures"]) == ("health", 2)
    assert (recovered["data"]["kind"], recovered["data"]["job_id"]) == ("health", job["id"])
    assert await stored_types(api) == types
    assert receiver.bad == []


async def test_a_failing_streak_outlives_a_new_login_and_the_next_success_recovers(
    receiver: Receiver, make_config: MakeConfig, start_api: Callable[..., Any],
    sandbox: Sandbox,
) -> None:
    api: Api = await start_api(make_config(webhooks=hooks(receiver, failing_after=2)))
    await connect(api, sandbox, USER, ALICE)
    await types_arrived(receiver, 1)
    sandbox.state.set_fault(ALICE, "api", Fault(status=503))
    for _ in range(2):
        [job] = await sync_now(api, USER, "health")
        assert job["status"] == "FAILED", job
    sandbox.state.clear_fault(ALICE, "api")
    await types_arrived(receiver, 2)
    # a login resets the cursors' failure counts, not the streak that was announced
    assert (await api.login(USER, ALICE)).status == 200
    [job] = await sync_now(api, USER, "health")
    assert job["status"] == "SUCCESS", job

    types = await types_arrived(receiver, 5)
    assert types == ["session.connected", "sync.failing", "session.connected",
                     "health.synced", "sync.recovered"]
    assert receiver.bad == []


async def test_with_webhooks_disabled_nothing_is_written(
    make_config: MakeConfig, start_api: Callable[..., Any], sandbox: Sandbox,
) -> None:
    api: Api = await start_api(make_config())
    await connect(api, sandbox, USER, ALICE)
    [job] = await sync_now(api, USER, "activities")
    assert job["status"] == "SUCCESS", job
    assert (await api.delete(USER)).status == 204
    assert await stored_types(api) == []


async def test_a_receiver_that_never_answers_holds_back_neither_the_api_nor_the_sync(
    receiver: Receiver, make_config: MakeConfig, start_api: Callable[..., Any],
    sandbox: Sandbox,
) -> None:
    """The receiver holds every request open: logins, syncs and status answers go on, the
    attempt ends at `webhooks.timeout_seconds` as a timeout, and everything arrives once
    the receiver answers again."""
    stall = asyncio.Event()
    receiver.stall = stall
    api: Api = await start_api(make_config(webhooks=hooks(
        receiver, timeout_seconds=1, connect_timeout_seconds=0.5, lease_seconds=2,
        backoff_base_seconds=0.2)))
    try:
        await connect(api, sandbox, USER, ALICE)
        await eventually(lambda: receiver.stalled, 30, "the first delivery to be held")
        [job] = await sync_now(api, USER, "activities")
        assert job["status"] == "SUCCESS", job
        status = await (await api.status(USER, refresh=True)).json()
        assert status["status"] == "VALID", status
        assert not stall.is_set()  # all of it while the receiver held the delivery

        async def timed_out() -> bool:
            use_db(api)
            return await WebhookDelivery.filter(last_error="timeout").exists()

        await eventually(timed_out, 30, "the held attempt to end as a timeout")
    finally:
        receiver.stall = None
        stall.set()

    async def all_delivered() -> bool:
        use_db(api)
        statuses = await WebhookDelivery.all().values_list("status", flat=True)
        return len(statuses) == 2 and set(statuses) == {DeliveryStatus.DELIVERED}

    await eventually(all_delivered, 30, "both events to be delivered")
    assert await stored_types(api) == ["session.connected", "activities.synced"]
    assert receiver.bad == []
