"""Figure 8's receiver counts what the service's signatures prove, and its table rows judge
the figures it reports."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.table import upsert_change_rows, webhook_rows
from bench.webhook_peers import SECRET, receiver_app, sample_events
from service.webhooks.signing import Signer
from tests.support.aliases import AiohttpClient


def signed(message_id: str, body: str, secret: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {"content-type": "application/json", "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Signer((secret,)).header(message_id, now, body)}


async def test_receiver_counts_deliveries_ids_and_bad_signatures(
        aiohttp_client: AiohttpClient) -> None:
    http = await aiohttp_client(receiver_app())
    body = sample_events(2)[0].body()
    other = "whsec_" + "QUJD" * 8  # a valid secret that is not the receiver's
    for message_id, secret in [("msg_1", SECRET), ("msg_1", SECRET), ("msg_2", other)]:
        response = await http.post("/hook", data=body, headers=signed(message_id, body, secret))
        assert response.status == 204
    stats = await (await http.get("/stats")).json()
    assert (stats["received"], stats["unique"], stats["invalid"]) == (3, 2, 1)
    assert stats["types"] == {"activities.synced": 2}
    assert (await http.post("/reset")).status == 204
    assert (await (await http.get("/stats")).json())["received"] == 0


def figure(ratio: float, lost: int) -> dict[str, Any]:
    order = ["off", "on", "held", "held", "on", "off"]
    return {"db": "sqlite", "overhead": {
        "users": 500, "order": order, "runs": [{"mode": mode} for mode in order],
        "cpu_s_per_user_on": 0.0105 * ratio, "cpu_s_per_user_off": 0.0105, "ratio": ratio,
        "cpu_s_per_user_held": 0.0105 * (ratio - 0.02), "held_ratio": ratio - 0.02,
        "held_events": 2000, "wall_ratio": 1.0, "events": 2000, "received": 2000,
        "unique": 2000, "invalid": 0, "jobs_ok": 3000, "jobs": 3000,
    }, "drain": {
        "events": 5000, "concurrency": 8, "deliveries_per_s": 800.0, "bare_posts_per_s": 1600.0,
        "ratio": 0.5, "cpu_ms_per_delivery": 0.5, "bare_cpu_ms_per_post": 0.15, "lost": lost,
        "duplicates": 0, "invalid": 0, "not_marked_delivered": 0,
    }}


def verdicts(rows: list[tuple[str, str, str, str, str]]) -> list[str]:
    return [row[4] for row in rows if row[4]]


def test_webhook_rows_pass_within_five_percent_and_nothing_lost() -> None:
    assert verdicts(webhook_rows(figure(1.04, 0))) == ["PASS", "PASS", "PASS"]
    assert verdicts(webhook_rows(figure(1.06, 1))) == ["MISS", "PASS", "MISS"]
    assert webhook_rows({"db": "postgres", "error": "boom"})[0][4] == "boom"


def test_upsert_rows_miss_when_an_unchanged_reupsert_writes() -> None:
    changes = {"rows": 10_000, "first": {"inserted": 5000, "updated": 0, "unchanged": 5000},
               "unchanged_written": 0, "unchanged_rows_per_s": 20_000.0,
               "changed_updated": 10_000, "changed_rows_per_s": 10_000.0}
    assert verdicts(upsert_change_rows({"db": "sqlite", "changes": changes})) == ["PASS"]
    changes["unchanged_written"] = 3
    assert verdicts(upsert_change_rows({"db": "sqlite", "changes": changes})) == ["MISS"]
    assert upsert_change_rows({"db": "sqlite"}) == []
