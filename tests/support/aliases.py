"""Names for the fixture types the tests annotate with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from service.config import Config
from tests.support.app import Api

# the `make_config` fixture: a Config for this test's sandbox and database, sections overridable
MakeConfig = Callable[..., Config]
# the `start_api` fixture: one more app instance on that configuration
StartApi = Callable[..., Awaitable[Api]]  # (config, clock=SYSTEM_CLOCK)
# pytest-aiohttp's `aiohttp_client` and `aiohttp_server` fixtures
AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]
AiohttpServer = Callable[..., Awaitable[TestServer]]
# a raw HTTP client of a test server
Http = TestClient[Any, Any]
