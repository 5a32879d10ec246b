"""Typed application keys: every resource the app factory ties to an app instance."""

from __future__ import annotations

from aiohttp import web
from tortoise.context import TortoiseContext

from service.clock import Clock
from service.config import Config
from service.crypto import Cipher
from service.garmin import GarminGateway
from service.metrics import Metrics
from service.sessions.service import SessionService
from service.store.leases import UserLeases
from service.sync.runner import SyncRunner
from service.sync.scheduler import SyncScheduler
from service.sync.service import SyncService
from service.webhooks.outbox import Outbox

CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Clock)
DB_CONTEXT = web.AppKey("db_context", TortoiseContext)
CIPHER = web.AppKey("cipher", Cipher)
GATEWAY = web.AppKey("garmin_gateway", GarminGateway)
LEASES = web.AppKey("user_leases", UserLeases)
SESSIONS = web.AppKey("session_service", SessionService)
RUNNER = web.AppKey("sync_runner", SyncRunner)
SCHEDULER = web.AppKey("sync_scheduler", SyncScheduler)
SYNC = web.AppKey("sync_service", SyncService)
METRICS = web.AppKey("metrics", Metrics)
OUTBOX = web.AppKey("webhook_outbox", Outbox)
