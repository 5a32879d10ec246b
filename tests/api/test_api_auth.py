"""Caller authentication: bearer API keys on every /api/v1 route, and per-user isolation."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from service.config import Config
from tests.support.aliases import StartApi
from tests.support.app import API_KEY, Api, Sandbox, connect, raw_rows

SECOND_KEY = "second-api-key-ABCDEFGHIJ"
LOGIN_BODY = {"username": "alice@example.com", "password": "pw-correct-horse"}
ROUTES = [
    ("POST", "/api/v1/garmin/session/login", LOGIN_BODY),
    ("POST", "/api/v1/garmin/session/mfa", {"mfa_code": "123456"}),
    ("GET", "/api/v1/garmin/session/status", None),
    ("GET", "/api/v1/garmin/session/status?refresh=true", None),
    ("DELETE", "/api/v1/garmin/session", None),
]
ROUTE_IDS = ["login", "mfa", "status", "status-refresh", "delete"]


async def call(api: Api, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return await api.client.request(method, path, json=body, headers=headers)


async def assert_unauthorized(response: Any) -> dict[str, Any]:
    text = await response.text()
    assert response.status == 401, text
    assert response.content_type == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = json.loads(text)
    assert body["status"] == 401
    assert body["type"].endswith("/unauthorized")
    assert body["title"] and body["detail"]
    assert API_KEY not in text
    return dict(body)


async def test_missing_authorization_is_401_with_www_authenticate(api: Api) -> None:
    response = await api.client.get("/api/v1/garmin/session/status",
                                    headers={"X-User-Id": "user-a"})
    body = await assert_unauthorized(response)
    assert "Bearer" in body["detail"]


async def test_wrong_key_is_401(api: Api) -> None:
    response = await api.client.get("/api/v1/garmin/session/status",
                                    headers=Api.headers("user-a", "wrong-key-0123456789"))
    body = await assert_unauthorized(response)
    assert "not valid" in body["detail"]


@pytest.mark.parametrize(
    "authorization",
    [
        f"Basic {API_KEY}",
        "Basic dGVzdDp0ZXN0",
        API_KEY,
        f"Token {API_KEY}",
        f"Bearer{API_KEY}",
        "Bearer",
        "Bearer ",
        f"Bearer {API_KEY.upper()}",
        f"Bearer {API_KEY[:-1]}",
        f"Bearer {API_KEY}x",
        f"Bearer {API_KEY} {API_KEY}",
        "",
    ],
    ids=["basic-with-key", "basic-credentials", "bare-key", "token-scheme", "no-space",
         "scheme-only", "scheme-and-space", "key-upper-case", "key-prefix", "key-suffix",
         "key-twice", "empty"],
)
async def test_anything_but_a_configured_bearer_key_is_401(api: Api, authorization: str) -> None:
    response = await api.client.get("/api/v1/garmin/session/status",
                                    headers={"Authorization": authorization,
                                             "X-User-Id": "user-a"})
    await assert_unauthorized(response)


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    response = await api.client.get("/api/v1/garmin/session/status",
                                    headers={"Authorization": f"bearer {API_KEY}",
                                             "X-User-Id": "user-a"})
    assert response.status == 200


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_every_v1_route_requires_the_key(
    api: Api, sandbox: Sandbox, method: str, path: str, body: Any
) -> None:
    await connect(api, sandbox, "user-a")
    before = await raw_rows(api)
    calls = sandbox.state.get_account("alice@example.com")
    seen = (calls.login_attempts, calls.api_calls, calls.mfa_attempts)
    await assert_unauthorized(await call(api, method, path, body, {"X-User-Id": "user-a"}))
    await assert_unauthorized(
        await call(api, method, path, body, Api.headers("user-a", "not-the-key-0123456789")))
    assert await raw_rows(api) == before
    calls = sandbox.state.get_account("alice@example.com")
    assert (calls.login_attempts, calls.api_calls, calls.mfa_attempts) == seen


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
async def test_key_is_checked_before_user_id_and_body(
    api: Api, method: str, path: str, body: Any
) -> None:
    response = await api.client.request(
        method, path, data=b"{not json", headers={"Content-Type": "text/plain"})
    await assert_unauthorized(response)


async def test_unknown_api_route_without_key_is_401_not_404(api: Api) -> None:
    response = await api.client.get("/api/v1/nothing-here")
    await assert_unauthorized(response)


async def test_healthz_is_open_without_a_key(api: Api) -> None:
    response = await api.client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_healthz_ignores_a_wrong_key(api: Api) -> None:
    response = await api.client.get("/healthz", headers={"Authorization": "Bearer nope"})
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_openapi_spec_is_open_without_a_key(api: Api) -> None:
    response = await api.client.get("/api/v1/openapi.json")
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/garmin/session/login" in spec["paths"]


async def test_another_user_sees_missing_not_the_first_users_session(
    api: Api, sandbox: Sandbox
) -> None:
    await connect(api, sandbox, "user-a")
    body = await (await api.status("user-b")).json()
    assert body["status"] == "MISSING"
    assert body["connected_at"] is None
    assert [row["user_id"] for row in await raw_rows(api)] == ["user-a"]


async def test_another_users_delete_leaves_the_first_users_row(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-a")
    before = await raw_rows(api)
    assert (await api.delete("user-b")).status == 204
    assert await raw_rows(api) == before
    assert (await (await api.status("user-a")).json())["status"] == "VALID"


async def test_another_users_mfa_code_does_not_finish_the_first_users_login(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.add("mfa@example.com", mfa_code="123456")
    assert (await (await api.login("user-a", "mfa@example.com")).json())["status"] == \
        "MFA_REQUIRED"
    response = await api.mfa("user-b", "123456")
    assert response.status == 409
    assert (await (await api.status("user-a")).json())["status"] == "MFA_PENDING"
    assert (await (await api.status("user-b")).json())["status"] == "MISSING"


async def test_user_ids_are_case_sensitive(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-a")
    assert (await (await api.status("USER-A")).json())["status"] == "MISSING"


async def test_a_second_configured_key_also_works(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi
) -> None:
    api = await start_api(make_config(auth={"api_keys": [API_KEY, SECOND_KEY]}))
    sandbox.add("alice@example.com")
    response = await api.client.post("/api/v1/garmin/session/login", json=LOGIN_BODY,
                                     headers=Api.headers("user-a", SECOND_KEY))
    assert response.status == 200, await response.text()
    for key in (API_KEY, SECOND_KEY):
        status = await api.client.get("/api/v1/garmin/session/status",
                                      headers=Api.headers("user-a", key))
        assert status.status == 200
        assert (await status.json())["status"] == "VALID"
    await assert_unauthorized(await api.client.get(
        "/api/v1/garmin/session/status", headers=Api.headers("user-a", SECOND_KEY + "x")))


async def test_no_configured_keys_refuses_every_call(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi
) -> None:
    api = await start_api(make_config(auth={"api_keys": []}))
    sandbox.add("alice@example.com")
    for method, path, body in ROUTES:
        for headers in (Api.headers("user-a"), {"X-User-Id": "user-a"},
                        {"Authorization": "Bearer ", "X-User-Id": "user-a"}):
            await assert_unauthorized(await call(api, method, path, body, headers))
    assert sandbox.state.get_account("alice@example.com").login_attempts == 0
    assert await raw_rows(api) == []
    assert (await api.client.get("/healthz")).status == 200
