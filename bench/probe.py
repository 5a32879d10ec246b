"""The status probe of figures 2 and 4: a fixed-rate stream of status requests and the
service's event-loop lag histogram around it."""

from __future__ import annotations

import asyncio
import contextlib
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import harness as h
from bench.common import headers, metrics_text

LAG_METRIC = "garmin_sync_event_loop_lag_seconds"
LAG_MAX_GAUGE = "garmin_sync_event_loop_lag_max_seconds"
HTTP_METRIC = "garmin_sync_http_request_duration_seconds"
STATUS_ROUTE = "/api/v1/garmin/session/status"


async def lag_snapshot(proc: h.Proc) -> dict[str, Any]:
    """The service's event-loop lag histogram (cumulative count per bucket upper bound), its
    "largest lag of the last minute" gauge, and the status route's handling-time histogram,
    as one scrape shows them."""
    lag: dict[float, float] = {}
    handling: dict[float, float] = {}
    window_max = float("nan")
    for line in (await metrics_text(proc)).splitlines():
        if line.startswith(LAG_METRIC + "_bucket{"):
            lag[_bucket_bound(line)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(HTTP_METRIC + "_bucket{") and f'route="{STATUS_ROUTE}"' in line:
            handling[_bucket_bound(line)] = float(line.rsplit(" ", 1)[1])
        elif line.startswith(LAG_MAX_GAUGE + " "):
            window_max = float(line.rsplit(" ", 1)[1])
    if not lag:
        raise RuntimeError(f"{LAG_METRIC} is not exported by {proc.name}")
    return {"buckets": lag, "window_max": window_max, "status_handling": handling}


def _bucket_bound(line: str) -> float:
    return float(line.split('le="', 1)[1].split('"', 1)[0])


def handling_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The status route's handling time in the service (its middleware's histogram: from
    the handler's start to its answer) between two scrapes, bounded by its buckets."""
    return lag_between({"buckets": before["status_handling"]},
                       {"buckets": after["status_handling"]})


def lag_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the lag histogram saw between two scrapes, bounded by its buckets.

    The service samples lag every 0.1 s into fixed buckets (1, 2.5, 5, 10, 25, 50 ms...),
    so a percentile is only known to lie in one bucket: we report that bucket's bounds, and
    a target like "p99 <= 5 ms" is decided exactly when it sits on a bucket bound."""
    bounds = sorted(after["buckets"])
    counts = [after["buckets"][b] - before["buckets"].get(b, 0.0) for b in bounds]
    samples = counts[-1] if counts else 0.0  # the +Inf bucket holds every sample

    def bucket_of(rank: float) -> tuple[float, float]:
        for index, bound in enumerate(bounds):
            if counts[index] >= rank:
                return (bounds[index - 1] if index else 0.0), bound
        return bounds[-2], math.inf

    p99 = bucket_of(math.ceil(0.99 * samples)) if samples else (math.nan, math.nan)
    top = bucket_of(samples) if samples else (math.nan, math.nan)
    return {"samples": int(samples), "p99_bucket_ms": [b * 1000 for b in p99],
            "max_bucket_ms": [b * 1000 for b in top],
            "cumulative": {("le +Inf" if math.isinf(b) else f"le {b * 1000:g} ms"): int(c)
                       for b, c in zip(bounds, counts, strict=True)}}


class StatusProbe:
    """A fixed-rate, open-loop stream of status requests (round-robin over `users`), with a
    slower one of `/healthz` beside it and the service's lag histogram around both.

    `/healthz` does no I/O, so its latency is time spent waiting for the event loop: an
    outside view of loop lag, with the load generator's and the network's share in it."""

    connections = 32
    health_rps = 20.0

    def __init__(self, users: list[str], rate: float, idle_seconds: float) -> None:
        self.users = users
        self.rate = rate
        self.idle_seconds = idle_seconds

    async def measure(self, service: h.Proc, seconds: float, *,
                      until: asyncio.Event | None = None, warmup: float = 0.5,
                      scrape_every: float | None = None) -> dict[str, Any]:
        """One run of both streams; `scrape_every` adds a /metrics scrape at that period,
        the same monitoring load a sync phase's job polling puts on the service."""
        path = "/api/v1/garmin/session/status"
        status = [h.raw_get(path, service.port, headers(u)) for u in self.users]
        health = [h.raw_get("/healthz", service.port)]
        lag0 = await lag_snapshot(service)
        # where the p99 timeline's zero lies, so a chart can place the sync's jobs on it
        window_started_at = datetime.now(UTC) + timedelta(seconds=warmup)
        done = asyncio.Event()
        scraper = (asyncio.ensure_future(scrape_until(service, scrape_every, done))
                   if scrape_every else None)
        try:
            with h.warm_core(h.client_cpu()):
                main, side = await asyncio.gather(
                    h.run_load(service.port, status, self.rate, seconds, self.connections,
                               service.pid, warmup=warmup, until=until),
                    h.run_load(service.port, health, self.health_rps, seconds, 4,
                               warmup=warmup, until=until))
        finally:
            done.set()
            if scraper is not None:
                await scraper
        lag1 = await lag_snapshot(service)
        return {"status": main.summary(), "healthz": side.summary(),
                "lag": lag_between(lag0, lag1), "lag_window_max_ms": lag1["window_max"] * 1000,
                "status_handling": handling_between(lag0, lag1),
                "p999_ms": main.percentile(0.999) * 1000,
                "window_started_at": window_started_at, "window_s": main.duration}


async def scrape_until(service: h.Proc, period: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await metrics_text(service)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), period)
