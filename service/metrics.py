"""Prometheus metrics: one `CollectorRegistry` per app instance, served at `GET /metrics`.

Every app instance owns its registry (never prometheus-client's process-wide default), so
several instances in one process (tests, a restart in place) never share or collide on
metrics. Labels only ever carry bounded, non-identifying values: route templates, HTTP
methods and statuses, operation and outcome names, sync kinds and job statuses. No user id,
secret or raw path reaches a label.

What is measured where:

- HTTP: `api.middleware.edge_middleware` calls `Metrics.http_answered` once per request,
  after errors became problem responses, so each counts with the status the caller got.
- Garmin: `GarminGateway` times each call in its thread and records the outcome.
- Sync jobs, items upserted, refreshed sessions written back or dropped: `SyncRunner`.
- Sessions by status: one grouped COUNT, run by the `/metrics` handler at scrape time.
- Thread pool busy/queued and running sync jobs: read from their owners at scrape time.
- Event-loop lag: `loop_lag_ctx`, a task that sleeps 0.1 s and records how late it woke.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tortoise.functions import Count

from service.models import GarminAuthenticationState, SessionStatus, status_expression

log = logging.getLogger(__name__)

PREFIX = "garmin_sync"
# the classic text format every Prometheus version scrapes (our names are all legacy-valid)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED_ROUTE = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CLIENT_CLOSED_STATUS = 499  # nginx's convention: the caller went away before the answer
SESSION_STATUSES = tuple(status.value for status in SessionStatus)
GARMIN_OUTCOMES = ("ok", "auth_rejected", "invalid_credentials", "mfa_invalid",
                   "mfa_challenge_lost", "rate_limited", "unavailable", "timeout", "protocol",
                   "error")

LOOP_LAG_INTERVAL_SECONDS = 0.1
LOOP_LAG_WINDOW_SECONDS = 60.0
SESSIONS_QUERY_TIMEOUT_SECONDS = 2.0

# status and health answers take well under 5 ms: the first buckets tell their tail apart
HTTP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                5.0, 10.0, 30.0)
GARMIN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def garmin_outcome(exc: BaseException | None) -> str:
    """The `outcome` label of a Garmin call that raised `exc` (None: it succeeded).

    Every `service.garmin.errors.GarminError` names its own outcome; anything else that
    escaped a call is a bug, counted as "error". (Read by attribute: this bottom module
    does not import the Garmin package, whose gateway records these metrics.)
    """
    if exc is None:
        return "ok"
    outcome = getattr(exc, "outcome", None)
    return outcome if isinstance(outcome, str) else "error"


class LoopLag:
    """The last lag and the largest one of the last minute, for gauges read at scrape time."""

    def __init__(self, window_seconds: float = LOOP_LAG_WINDOW_SECONDS) -> None:
        self._window = window_seconds
        self._samples: deque[tuple[float, float]] = deque()
        self.last = 0.0

    def record(self, lag: float, now: float) -> None:
        self.last = lag
        self._samples.append((now, lag))
        while self._samples and self._samples[0][0] < now - self._window:
            self._samples.popleft()

    def max(self) -> float:
        return max((lag for _at, lag in self._samples), default=0.0)


class Metrics:
    """Every metric of one app instance, registered in its own registry."""

    def __init__(self) -> None:
        self._http_children: dict[tuple[AbstractResource | None, str, int],
                                  tuple[Any, Any]] = {}
        # a sync makes thousands of Garmin calls: look each label set up once
        self._garmin_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            f"{PREFIX}_http_requests", "HTTP requests answered, by route template.",
            ["route", "method", "status"], registry=r)
        self.http_duration = Histogram(
            f"{PREFIX}_http_request_duration_seconds", "Time to answer an HTTP request.",
            ["route"], buckets=HTTP_BUCKETS, registry=r)
        self.garmin_calls = Counter(
            f"{PREFIX}_garmin_calls", "Garmin calls by gateway operation and outcome.",
            ["operation", "outcome"], registry=r)
        self.garmin_duration = Histogram(
            f"{PREFIX}_garmin_call_duration_seconds",
            "Time a Garmin call ran in the thread pool (queueing excluded).",
            ["operation"], buckets=GARMIN_BUCKETS, registry=r)
        self.executor_busy = Gauge(
            f"{PREFIX}_garmin_executor_busy_threads",
            "Threads of the Garmin pool running a call.", registry=r)
        self.executor_queued = Gauge(
            f"{PREFIX}_garmin_executor_queue_depth",
            "Garmin calls submitted to the pool and not started yet.", registry=r)
        self.sync_jobs = Counter(
            f"{PREFIX}_sync_jobs", "Sync jobs finished, by kind and final status.",
            ["kind", "status"], registry=r)
        self.sync_duration = Histogram(
            f"{PREFIX}_sync_job_duration_seconds", "Time a sync job ran (lease held).",
            ["kind"], buckets=JOB_BUCKETS, registry=r)
        self.sync_items_upserted = Counter(
            f"{PREFIX}_sync_items_upserted", "Activities or days written by sync jobs.",
            ["kind"], registry=r)
        self.sync_running = Gauge(
            f"{PREFIX}_sync_jobs_running", "Users whose sync jobs run in this replica now.",
            registry=r)
        self.token_refreshes = Counter(
            f"{PREFIX}_token_refreshes", "OAuth2 refreshes garth attempted, by outcome.",
            ["outcome"], registry=r)
        self.refreshes_persisted = Counter(
            f"{PREFIX}_session_refreshes_persisted",
            "Sessions refreshed during a sync job or a live status check and written back.",
            registry=r)
        self.stale_sessions_dropped = Counter(
            f"{PREFIX}_stale_session_writes_dropped",
            "Refreshed sessions not written back because a newer login replaced the row.",
            registry=r)
        self.sessions = Gauge(
            f"{PREFIX}_sessions", "Stored Garmin sessions by status (counted at scrape time).",
            ["status"], registry=r)
        self.loop_lag = Histogram(
            f"{PREFIX}_event_loop_lag_seconds",
            f"How late a {LOOP_LAG_INTERVAL_SECONDS:g} s sleep on the event loop woke up.",
            buckets=LAG_BUCKETS, registry=r)
        self.lag = LoopLag()
        self.loop_lag_last = Gauge(
            f"{PREFIX}_event_loop_lag_last_seconds", "The most recent event-loop lag.",
            registry=r)
        self.loop_lag_last.set_function(lambda: self.lag.last)
        self.loop_lag_max = Gauge(
            f"{PREFIX}_event_loop_lag_max_seconds",
            f"The largest event-loop lag of the last {LOOP_LAG_WINDOW_SECONDS:g} s.",
            registry=r)
        self.loop_lag_max.set_function(self.lag.max)
        for status in SESSION_STATUSES:
            self.sessions.labels(status).set(0)

    # --- recording ----------------------------------------------------------------------

    def http_answered(self, request: web.Request, status: int, seconds: float) -> None:
        """On every request (from `api.middleware.edge_middleware`).

        The labelled children are looked up once per (route, method, status), keyed by the
        matched resource object and the int status, so the hot path neither calls `labels()`
        (which cost more than the increment) nor formats the labels again. The key stays
        bounded: resources are the router's, an unknown method is "OTHER".
        """
        method = request.method
        if method not in KNOWN_METHODS:
            method = "OTHER"
        resource = request.match_info.route.resource
        key = (resource, method, status)
        children = self._http_children.get(key)
        if children is None:
            route = route_label(request)
            children = (self.http_requests.labels(route, method, str(status)),
                        self.http_duration.labels(route))
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def garmin_call(self, operation: str, exc: BaseException | None, seconds: float) -> None:
        """Thread-safe: called from the Garmin pool's threads."""
        outcome = garmin_outcome(exc)
        children = self._garmin_children.get((operation, outcome))
        if children is None:  # a race here finds the same children twice: labels() is safe
            children = (self.garmin_calls.labels(operation, outcome),
                        self.garmin_duration.labels(operation))
            self._garmin_children[(operation, outcome)] = children
        children[0].inc()
        children[1].observe(seconds)

    def sync_job(self, kind: str, status: str) -> None:
        self.sync_jobs.labels(kind, status).inc()

    def sync_job_ran(self, kind: str, seconds: float) -> None:
        self.sync_duration.labels(kind).observe(seconds)

    def items_upserted(self, kind: str, count: int) -> None:
        self.sync_items_upserted.labels(kind).inc(count)

    def token_refreshed(self, ok: bool) -> None:
        """Called from a pool thread; prometheus-client counters are thread-safe."""
        self.token_refreshes.labels(outcome="ok" if ok else "failed").inc()

    def refresh_persisted(self) -> None:
        self.refreshes_persisted.inc()

    def stale_session_dropped(self) -> None:
        self.stale_sessions_dropped.inc()

    def watch_executor(self, busy: Callable[[], int], queued: Callable[[], int]) -> None:
        self.executor_busy.set_function(busy)
        self.executor_queued.set_function(queued)

    def watch_sync_jobs(self, running: Callable[[], int]) -> None:
        self.sync_running.set_function(running)

    async def refresh_sessions(self, now: datetime) -> None:
        """Count sessions by status with one grouped query (by the rule `/status` reports
        with: `service.models.status_of`)."""
        state = status_expression(now)
        # `.values()`, not `.values_list()`: Tortoise 1.1 repeats the CASE in the select list
        # of `values_list` with fresh parameters, which PostgreSQL refuses as ungrouped
        rows = await asyncio.wait_for(
            GarminAuthenticationState.annotate(state=state, n=Count("id"))
            .group_by("state").values("state", "n"),
            SESSIONS_QUERY_TIMEOUT_SECONDS,
        )
        counts = dict.fromkeys(SESSION_STATUSES, 0)
        for row in rows:
            counts[str(row["state"])] = int(row["n"])
        for name, count in counts.items():
            self.sessions.labels(name).set(count)


# --- HTTP -------------------------------------------------------------------------------


def route_label(request: web.Request) -> str:
    """The matched route's template (never the raw path, which may carry ids)."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


# --- event-loop lag ---------------------------------------------------------------------


async def watch_loop_lag(metrics: Metrics,
                         interval: float = LOOP_LAG_INTERVAL_SECONDS) -> None:
    """Sleep `interval` again and again; how late each wake-up is, is the loop's lag."""
    loop = asyncio.get_running_loop()
    while True:
        before = loop.time()
        await asyncio.sleep(interval)
        now = loop.time()
        lag = max(now - before - interval, 0.0)
        metrics.loop_lag.observe(lag)
        metrics.lag.record(lag, now)


def loop_lag_ctx(metrics: Metrics) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context running `watch_loop_lag` while the app runs."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(watch_loop_lag(metrics))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx
