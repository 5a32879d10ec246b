"""Three real replicas on one PostgreSQL database, each with webhooks on and its own
dispatcher: every event the users' logins, syncs and disconnects wrote is delivered, once
(no replica crashed, so no duplicate), and each user's events arrive in their order."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from tests.support.replicas import PG_URL, SKIP_REASON, Cluster, start, username_of
from tests.support.waiting import eventually
from tests.support.webhooks import Receiver, new_secret

pytestmark = pytest.mark.skipif(not PG_URL, reason=SKIP_REASON)
WORKERS = ["w1", "w2", "w3"]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = Receiver(secrets=[new_secret()])
    await started.start()
    yield started
    await started.stop()


async def test_three_replicas_deliver_every_event_once_in_each_users_order(
    receiver: Receiver, cluster: Cluster
) -> None:
    cluster.settings.update({
        "WEBHOOKS_ENABLED": "true", "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        "WEBHOOKS_POLL_SECONDS": "0.1",
        "WEBHOOKS_ENDPOINTS": json.dumps([{"id": "main", "url": receiver.url(),
                                           "secrets": list(receiver.secrets)}]),
    })
    users = [f"user-{n:02d}" for n in range(6)]
    await start(cluster, [{"username": username_of(user), "activities_per_day": 2}
                          for user in users], WORKERS)
    for n, user in enumerate(users):
        await cluster.connect(WORKERS[n % 3], user)

    async def synced() -> bool:
        cluster.check_alive()
        rows = await cluster.rows("SELECT DISTINCT user_id, type FROM webhook_event "
                                  "WHERE type IN ('activities.synced', 'health.synced')")
        return len(rows) == 2 * len(users)

    await eventually(synced, 60, "both kinds of data events for every user")
    for n, user in enumerate(users[:3]):  # disconnects through another replica than the login
        status, _ = await cluster.call(WORKERS[(n + 1) % 3], "DELETE",
                                       "/api/v1/garmin/session", user)
        assert status == 204

    async def all_delivered() -> bool:
        cluster.check_alive()
        rows = await cluster.rows("SELECT count(*) AS n FROM webhook_delivery "
                                  "WHERE status <> 'delivered'")
        return rows[0]["n"] == 0

    await eventually(all_delivered, 60, "every delivery delivered")
    events = await cluster.rows("SELECT message_id, user_id, type, sequence FROM webhook_event "
                                "ORDER BY user_id, sequence")
    got = receiver.delivered()
    assert receiver.bad == []
    assert sorted(r.message_id for r in got) == sorted(e["message_id"] for e in events)
    assert len({r.message_id for r in got}) == len(got), "a delivery was sent twice"
    order = {e["message_id"]: e["sequence"] for e in events}
    by_user: dict[str, list[int]] = defaultdict(list)
    for r in got:
        by_user[r.payload["data"]["user_id"]].append(order[r.message_id])
    assert all(seq == sorted(seq) for seq in by_user.values()), by_user
    types = defaultdict(list)
    for e in events:
        types[e["user_id"]].append(e["type"])
    for n, user in enumerate(users):
        assert types[user].count("session.connected") == 1
        assert types[user].count("session.disconnected") == (1 if n < 3 else 0)
