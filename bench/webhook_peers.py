"""The other ends of figure 8 (bench/webhooks.py), each run as a process of its own.

- `python -m bench.webhook_peers receiver --port P`: answers 204 to every POST /hook after
  verifying its signature with the `standardwebhooks` package, and counts the deliveries,
  their distinct `webhook-id`s, bad signatures and event types (GET /stats, POST /reset).
- `python -m bench.webhook_peers send --url U --count M`: the bare sender, which signs and
  POSTs the drain's M bodies with aiohttp, DISPATCH_CONCURRENCY at a time, with no database.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

# a fixed whsec_ secret: the benchmark's receiver is local and its deliveries are thrown away
SECRET = "whsec_" + base64.b64encode(b"garmin-sync benchmark webhook key!").decode()
EVENTS_PER_USER = 10  # of the drain's prefilled outbox
DISPATCH_CONCURRENCY = 8  # webhooks.concurrency's default, given so the bare sender matches


class Receiver:
    """Verifies each POST's signature, answers 204 (a bad signature too, so a wrong one
    shows in the counts rather than as a retry storm) and counts what arrived."""

    def __init__(self) -> None:
        self.webhook = Webhook(SECRET)
        self.reset()

    def reset(self) -> None:
        self.received = 0
        self.invalid = 0
        self.ids: set[str] = set()
        self.types: dict[str, int] = {}
        self.first: float | None = None
        self.last: float | None = None

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.invalid += 1
        else:
            self.types[payload["type"]] = self.types.get(payload["type"], 0) + 1
        now = time.monotonic()
        self.first = now if self.first is None else self.first
        self.last = now
        self.received += 1
        self.ids.add(request.headers.get("webhook-id", ""))
        return web.Response(status=204)

    async def stats(self, _request: web.Request) -> web.Response:
        span = (self.last - self.first) if self.first is not None and self.last else 0.0
        return web.json_response({"received": self.received, "unique": len(self.ids),
                                  "invalid": self.invalid, "types": self.types, "span_s": span})

    async def clear(self, _request: web.Request) -> web.Response:
        self.reset()
        return web.Response(status=204)


def receiver_app() -> web.Application:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.hook)
    app.router.add_get("/stats", receiver.stats)
    app.router.add_post("/reset", receiver.clear)
    return app


def serve_receiver(port: int) -> None:
    web.run_app(receiver_app(), host="127.0.0.1", port=port, access_log=None, print=None)


async def bare_send(url: str, count: int, concurrency: int) -> dict[str, Any]:
    """Sign and POST the drain's `count` bodies, `concurrency` at a time, as a sender with
    no outbox would (aiohttp's client, as the dispatcher uses it)."""
    webhook = Webhook(SECRET)
    bodies = iter(enumerate(event.body() for event in sample_events(count)))
    statuses: dict[int, int] = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=10)) as http:
        async def worker() -> None:
            for index, body in bodies:
                message_id, now = f"msg_bench{index:08d}", datetime.now(UTC)
                headers = {"content-type": "application/json", "webhook-id": message_id,
                           "webhook-timestamp": str(int(now.timestamp())),
                           "webhook-signature": webhook.sign(message_id, now, body)}
                async with http.post(url, data=body.encode(), headers=headers,
                                     allow_redirects=False) as response:
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        cpu0, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"sent": count, "statuses": statuses, "cpu_s": time.process_time() - cpu0,
            "wall_s": time.perf_counter() - started}


def sample_events(count: int) -> list[Any]:
    """`count` events as a sync writes them, alternately `activities.synced` and
    `health.synced`, EVENTS_PER_USER per user."""
    from service.webhooks import events

    now = datetime.now(UTC)
    today = now.date()
    users = max(1, count // EVENTS_PER_USER)
    made: list[Any] = []
    for index in range(count):
        user = f"hook-{index % users:05d}"
        if index % 2 == 0:
            ids = [10_000_000 + index * 3 + k for k in range(3)]
            made.append(events.activities_synced(user, now, index + 1, 3, 0, ids, 100))
        else:
            made.append(events.health_synced(user, now, index + 1,
                                             [today - timedelta(days=1), today]))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_peers")
    parser.add_argument("role", choices=["receiver", "send"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--url")
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    if args.role == "receiver":
        serve_receiver(args.port)
    else:
        outcome = asyncio.run(bare_send(args.url, args.count, DISPATCH_CONCURRENCY))
        print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
