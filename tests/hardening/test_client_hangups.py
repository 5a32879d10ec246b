"""A caller that hangs up mid-request is counted as 499 and logged quietly, never as a
database failure; a connection error while the caller is still there stays a 503."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from unittest import mock

import pytest
from aiohttp import ClientConnectionResetError, web
from aiohttp.test_utils import make_mocked_request
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.middleware import error_response
from service.app import create_app
from service.keys import METRICS
from tests.support.aliases import MakeConfig
from tests.support.app import API_KEY
from tests.support.waiting import eventually

LOGIN = "/api/v1/garmin/session/login"
CONNECTION_ERRORS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
                     ClientConnectionResetError)


def _count(app: web.Application, status: str) -> float:
    value = app[METRICS].registry.get_sample_value(
        "garmin_sync_http_requests_total",
        {"route": LOGIN, "method": "POST", "status": status})
    return value or 0.0


@pytest.fixture
async def served(make_config: MakeConfig) -> AsyncIterator[tuple[web.Application, int]]:
    """The app served as `garmin-sync serve` serves it: aiohttp's test server cancels a
    handler whose caller left, production does not (the handler sees the reset instead)."""
    app = create_app(make_config())
    runner = web.AppRunner(app, handler_cancellation=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield app, runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def test_caller_hanging_up_mid_body_is_499_and_no_error_is_logged(
        served: tuple[web.Application, int], caplog: pytest.LogCaptureFixture) -> None:
    app, port = served
    caplog.set_level(logging.DEBUG)
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {LOGIN} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
        "X-User-Id: user-1\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n"
        "\r\n{\"username\": ".encode())
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    await eventually(lambda: _count(app, "499") + _count(app, "503") >= 1,
                     what="the hang-up counted")
    assert _count(app, "499") == 1
    assert _count(app, "503") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "database unavailable" not in caplog.text


def _request(state: str) -> web.Request:
    """A request whose connection is open, closing, or already gone (no transport)."""
    transport = mock.Mock()
    transport.is_closing.return_value = state == "closing"
    transport.get_extra_info.return_value = None
    request = make_mocked_request("POST", LOGIN, transport=transport)
    if state == "gone":
        request.protocol.transport = None
    return request


@settings(max_examples=60, deadline=None, database=None)
@given(kind=st.sampled_from(CONNECTION_ERRORS), state=st.sampled_from(["gone", "closing", "open"]))
def test_connection_errors_are_the_callers_only_when_its_connection_is_closed(
        kind: type[OSError], state: str) -> None:
    response = error_response(_request(state), kind("Connection lost"))
    if state == "open":  # the caller still listens: the error came from the database driver
        assert response.status == 503
        assert response.headers["Retry-After"]
    else:
        assert response.status == 499
