"""Typed application keys: every resource the app factory ties to an app instance."""

from __future__ import annotations

from aiohttp import web
from tortoise.context import TortoiseContext

from service.config import Config
from service.crypto import Cipher
from service.garmin import GarminGateway
from service.sessions.locks import UserLocks
from service.sessions.service import SessionService

CONFIG = web.AppKey("config", Config)
DB_CONTEXT = web.AppKey("db_context", TortoiseContext)
CIPHER = web.AppKey("cipher", Cipher)
GATEWAY = web.AppKey("garmin_gateway", GarminGateway)
USER_LOCKS = web.AppKey("user_locks", UserLocks)
SESSIONS = web.AppKey("session_service", SessionService)
