"""Every response carries a request id, and log lines carry the request and the user."""

from __future__ import annotations

import io
import json
import logging

from service import logs
from tests.conftest import Api, Sandbox


async def test_incoming_request_id_is_returned(api: Api) -> None:
    response = await api.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"


async def test_missing_or_unsafe_request_id_is_replaced(api: Api) -> None:
    first = await api.client.get("/healthz")
    second = await api.client.get("/healthz", headers={"X-Request-Id": "bad id\twith spaces"})
    assert len(first.headers["X-Request-Id"]) == 32
    assert second.headers["X-Request-Id"] != "bad id\twith spaces"
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]


async def test_problem_responses_carry_the_request_id(api: Api) -> None:
    response = await api.client.get("/api/v1/garmin/session/status",
                                    headers={"X-Request-Id": "rid-401"})
    assert response.status == 401
    assert response.headers["X-Request-Id"] == "rid-401"


async def test_json_log_lines_carry_request_and_user(api: Api, sandbox: Sandbox) -> None:
    stream = io.StringIO()
    handler = logs.configure("INFO", "json", stream=stream)
    try:
        sandbox.add("alice@example.com")
        response = await api.client.post(
            "/api/v1/garmin/session/login",
            headers={**api.headers("user-7"), "X-Request-Id": "rid-login-7"},
            json={"username": "alice@example.com", "password": "pw-correct-horse"})
        assert response.status == 200
    finally:
        logging.getLogger().removeHandler(handler)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    connected = [e for e in entries if "connected a Garmin session" in e["message"]]
    assert connected, entries
    assert connected[0]["request_id"] == "rid-login-7"
    assert connected[0]["user_id"] == "user-7"
