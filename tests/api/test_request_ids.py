"""Every response carries a request id, and log lines carry the request and the user."""

from __future__ import annotations

import io
import json
import logging

import pytest

from service import logs
from service.errors import PROBLEM_CONTENT_TYPE
from service.keys import SESSIONS
from service.sessions.status import StatusView
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import Api, Sandbox


def fail_status(api: Api) -> None:
    """Make the status use case raise an unexpected error (a bug, not a domain problem)."""

    async def boom(user_id: str, refresh: bool = False) -> StatusView:
        raise RuntimeError("secret-internal-detail")

    api.client.server.app[SESSIONS].status = boom  # type: ignore[method-assign]


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


async def test_unmatched_route_problem_carries_the_request_id(api: Api) -> None:
    response = await api.client.get("/no-such-route", headers={"X-Request-Id": "rid-404"})
    assert response.status == 404
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert response.headers["X-Request-Id"] == "rid-404"


async def test_unhandled_error_is_a_500_problem_carrying_the_request_id(api: Api) -> None:
    fail_status(api)
    response = await api.client.get("/api/v1/garmin/session/status",
                                    headers={**api.headers("user-7"), "X-Request-Id": "rid-500"})
    text = await response.text()
    assert response.status == 500
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert json.loads(text)["type"].endswith("/internal-error")
    assert "secret-internal-detail" not in text
    assert response.headers["X-Request-Id"] == "rid-500"


async def test_unhandled_error_is_logged_with_traceback_request_and_user(api: Api) -> None:
    fail_status(api)
    stream = io.StringIO()
    handler = logs.configure("INFO", "json", stream=stream)
    try:
        response = await api.client.get(
            "/api/v1/garmin/session/status",
            headers={**api.headers("user-7"), "X-Request-Id": "rid-log-500"})
        assert response.status == 500
    finally:
        logging.getLogger().removeHandler(handler)
    entries = [json.loads(line) for line in stream.getvalue().splitlines()]
    errors = [e for e in entries if e["message"].startswith("unhandled error on GET")]
    assert len(errors) == 1, entries
    assert errors[0]["request_id"] == "rid-log-500"
    assert errors[0]["user_id"] == "user-7"
    assert "RuntimeError" in errors[0]["exception"]


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/garmin/session/status"])
async def test_request_ids_and_problems_work_with_metrics_disabled(
    make_config: MakeConfig, start_api: StartApi, path: str
) -> None:
    api = await start_api(make_config(metrics={"enabled": False}))
    response = await api.client.get(path, headers={"X-Request-Id": "rid-no-metrics"})
    assert response.headers["X-Request-Id"] == "rid-no-metrics"
    if path.startswith("/api/"):
        assert response.status == 401
        assert response.content_type == PROBLEM_CONTENT_TYPE
    else:
        assert response.status == 200
