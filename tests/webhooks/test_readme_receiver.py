"""The receiver shown in the README (examples/webhook_receiver.py) accepts what the dispatcher
sends, and refuses a request whose body or signature was changed on the way."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from standardwebhooks import Webhook
from tortoise.context import TortoiseContext

from service.models.webhooks import DeliveryStatus, WebhookDelivery
from service.webhooks import events
from service.webhooks.config import WebhooksConfig
from service.webhooks.dispatcher import Dispatcher
from tests.support.webhooks import Clock, drain, emit, new_secret

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "webhook_receiver.py"
AT = datetime(2026, 3, 1, tzinfo=UTC)
SECRET = new_secret()


def load_example(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The example as a module, reading the endpoint's secret from its environment."""
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    spec = importlib.util.spec_from_file_location("webhook_receiver_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
async def example(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TestServer]:
    server = TestServer(load_example(monkeypatch).app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def test_the_readme_shows_the_example_file_as_it_is() -> None:
    assert EXAMPLE.read_text().strip() in (ROOT / "README.md").read_text()


async def test_the_example_receiver_takes_every_event_the_dispatcher_sends(
        wh_db: TortoiseContext, example: TestServer, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{example.port}/garmin-events"
    config = WebhooksConfig.from_mapping({
        "enabled": True, "allow_private_targets": True,
        "endpoints": [{"id": "example", "url": url, "secrets": [SECRET]}]})
    clock = Clock()
    await emit(config, clock, events.session_connected("u-42", AT, engine="di"),
               events.session_expired("u-42", AT, "Garmin rejected the session"))
    dispatcher = Dispatcher(config, "test", clock=clock, rng=random.Random(7))
    try:
        assert await drain(dispatcher, clock) == 2  # one attempt each: both answered 2xx
    finally:
        await dispatcher.close()
    rows = await WebhookDelivery.all().order_by("id")
    assert [(r.status, r.last_status) for r in rows] == [(DeliveryStatus.DELIVERED, 204)] * 2
    assert "ask u-42 to reconnect Garmin" in capsys.readouterr().out


async def test_the_example_receiver_refuses_a_changed_body_or_another_secret(
        example: TestServer) -> None:
    body = events.session_expired("u-42", AT, "revoked").body()
    now = datetime.now(UTC)
    signed = Webhook(SECRET).sign("msg_1", now, body)
    forged = Webhook(new_secret()).sign("msg_1", now, body)
    url = f"http://127.0.0.1:{example.port}/garmin-events"

    async def post(data: str, signature: str) -> int:
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now.timestamp())),
                   "webhook-signature": signature, "content-type": "application/json"}
        async with ClientSession() as session, session.post(url, data=data,
                                                            headers=headers) as response:
            return response.status

    assert await post(body, signed) == 204
    assert await post(body.replace("u-42", "u-43"), signed) == 401
    assert await post(body, forged) == 401
