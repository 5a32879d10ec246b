"""The app factory: `create_app(config)` wires routes, middlewares and resources.

Every resource is tied to the app with `cleanup_ctx`, opened in order on startup and closed
in reverse on shutdown: database (after migrations), webhook dispatcher (when enabled),
Garmin gateway (thread pool), domain services, and (with metrics on) the event-loop lag
watcher. Each app instance has its own Prometheus registry (`METRICS`), never
prometheus-client's global one.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from service import db
from service.api import probes, v1
from service.api.cursors import CURSORS, PURPOSE, Cursors
from service.api.middleware import METRICS_PATH, edge_middleware
from service.api.parsing import MAX_BODY_BYTES
from service.api.v1 import webhooks
from service.clock import SYSTEM_CLOCK, Clock
from service.config import Config
from service.crypto import build_cipher
from service.garmin import GarminGateway, GarminSettings, configure_consumer
from service.keys import (
    CIPHER,
    CLOCK,
    CONFIG,
    DB_CONTEXT,
    GATEWAY,
    LEASES,
    METRICS,
    OUTBOX,
    RUNNER,
    SCHEDULER,
    SESSIONS,
    SYNC,
)
from service.metrics import Metrics, loop_lag_ctx
from service.sessions.service import SessionService
from service.store.leases import UserLeases
from service.sync.runner import SyncRunner
from service.sync.scheduler import SqliteSchedulerLock, SyncScheduler
from service.sync.service import SyncService
from service.webhooks.config import WebhooksConfig
from service.webhooks.outbox import Outbox

log = logging.getLogger(__name__)

# How the app is served (`garmin-sync serve` and the tests' servers): request bodies reach
# it undecoded, so the edge refuses every Content-Encoding itself as problem+json
# (`api.middleware.check_content_encoding`) rather than aiohttp answering some in text/plain.
SERVE_OPTIONS: dict[str, Any] = {"auto_decompress": False}


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """Migrate (when configured) before opening the app's own Tortoise context.

    Aerich closes every Tortoise connection when it finishes, so it must run first; a schema
    that is behind (with auto-migrate off) or ahead of this build stops startup.
    """
    config = app[CONFIG]
    url = config.database.url
    if config.database.auto_migrate:
        applied = await db.upgrade(url)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
    else:
        missing = await db.pending(url)
        if missing:
            raise db.SchemaError(
                f"the database is missing migrations ({', '.join(missing)}); "
                "run `garmin-sync migrate`"
            )
    ctx = await db.open_context(url, config.database.statement_timeout_seconds,
                                config.database.pool_max_size)
    app[DB_CONTEXT] = ctx
    yield
    await db.close_context(ctx)


async def garmin_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Garmin gateway and its bounded thread pool."""
    garmin = app[CONFIG].garmin
    configure_consumer(garmin.oauth_consumer_key, garmin.oauth_consumer_secret)
    metrics = app[METRICS]
    settings = GarminSettings(domain=garmin.domain, base_url=garmin.base_url,
                              timeout_seconds=garmin.timeout_seconds, retries=garmin.retries,
                              on_refresh=metrics.token_refreshed, engine=garmin.engine,
                              login_timeout_seconds=app[CONFIG].login.timeout_seconds,
                              proxy_url=garmin.proxy_url or None,
                              di_strategies=garmin.di_strategies,
                              di_login_delays=garmin.di_login_delays,
                              di_refresh_margin_seconds=garmin.di_refresh_margin_seconds)
    gateway = GarminGateway(settings, threads=garmin.executor_threads, metrics=metrics,
                            thread_nice=garmin.thread_nice)
    metrics.watch_executor(lambda: gateway.busy_threads, lambda: gateway.queue_depth)
    app[GATEWAY] = gateway
    yield
    gateway.close()


def worker_id(configured: str) -> str:
    """Names this replica in leases and jobs; unique per process unless configured."""
    return configured or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    """Domain services, and the sync scheduler when enabled; on shutdown the live status
    checks are cancelled and the sync jobs drained (both write back their refreshes)."""
    config = app[CONFIG]
    db.activate(app[DB_CONTEXT])
    clock = app[CLOCK]
    leases = UserLeases(worker_id(config.sync.worker_id), config.sync.lease_seconds, clock.now)
    app[LEASES] = leases
    app[SESSIONS] = SessionService(config, app[GATEWAY], app[CIPHER], leases, clock,
                                   app[OUTBOX], app[METRICS])
    runner = SyncRunner(config.sync, app[GATEWAY], app[CIPHER], leases, clock.now,
                        metrics=app[METRICS], outbox=app[OUTBOX])
    scheduler = SyncScheduler(config.sync, runner, app[DB_CONTEXT], clock.now)
    app[METRICS].watch_sync_jobs(lambda: scheduler.active_jobs)
    runner.on_user_changed = app[SESSIONS].status_cache.forget
    app[RUNNER] = runner
    app[SCHEDULER] = scheduler
    app[SYNC] = SyncService(scheduler, leases, clock.now)
    lock = SqliteSchedulerLock(config.database.url) if config.database.is_sqlite else None
    if config.sync.enabled:
        if lock is not None:
            lock.acquire()
        await scheduler.start()
    try:
        yield
    finally:
        db.activate(app[DB_CONTEXT])
        await app[SESSIONS].close()
        await scheduler.shutdown()
        if lock is not None:
            lock.release()


def create_app(config: Config, clock: Clock = SYSTEM_CLOCK) -> web.Application:
    """A fully wired app; resources open when it starts (aiohttp runner or test client).
    Every service reads the time from `clock`."""
    metrics = Metrics()
    # one middleware does request id, metrics, problem rendering, database and auth: each
    # extra layer cost a coroutine per request (see service/api/middleware.py)
    middlewares: list[Middleware] = [
        edge_middleware(config, metrics if config.metrics.enabled else None),
    ]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    app[CONFIG] = config
    app[CLOCK] = clock
    app[METRICS] = metrics
    # checked here, so a bad endpoint or secret stops startup naming the key
    app[OUTBOX] = Outbox(WebhooksConfig.from_section(config.webhooks))
    app[CIPHER] = build_cipher(config.security.encryption_keys,
                               is_sqlite=config.database.is_sqlite,
                               data_dir=config.security.data_dir)
    app[CURSORS] = Cursors(app[CIPHER].derived_keys(PURPOSE))
    app.router.add_get("/healthz", probes.healthz)
    app.router.add_get("/readyz", probes.readyz)
    if config.metrics.enabled:
        app.router.add_get(METRICS_PATH, probes.metrics)
    v1.add_routes(app)
    # the dispatcher stops after the scheduler drained (whose last jobs may emit events)
    app.cleanup_ctx.extend([database_ctx, webhooks.dispatcher_ctx, garmin_ctx, services_ctx])
    if config.metrics.enabled:
        app.cleanup_ctx.append(loop_lag_ctx(metrics))
    return app
