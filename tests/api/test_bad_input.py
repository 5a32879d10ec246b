"""Malformed input against the real app: always a 4xx problem, never a 500, never a write.

Every case runs after user-1 has logged in through the sandbox, so a case that slipped past
validation and touched the session would show up as a changed row.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.app import API_KEY, Api, Sandbox, connect, raw_rows

LOGIN = "/api/v1/garmin/session/login"
MFA = "/api/v1/garmin/session/mfa"
STATUS = "/api/v1/garmin/session/status"
SESSION = "/api/v1/garmin/session"
JSON = "application/json"
GOOD_LOGIN = {"username": "alice@example.com", "password": "pw-correct-horse"}
ECHO_PASSWORD = "Recognisable-Pa55word-Xq7"


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


def login_with(**changes: Any) -> bytes:
    body: dict[str, Any] = {**GOOD_LOGIN, **changes}
    return as_json({key: value for key, value in body.items() if value is not ...})


@dataclass(frozen=True)
class Case:
    id: str
    status: int
    slug: str
    method: str = "POST"
    path: str = LOGIN
    body: bytes | None = None
    content_type: str | None = JSON
    user: str | None = "user-1"
    fields: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)


CASES = [
    # --- not JSON, or not a JSON object ---
    Case("malformed-json", 400, "bad-request", body=b'{"username": "alice@example.com", '),
    Case("trailing-garbage", 400, "bad-request", body=as_json(GOOD_LOGIN) + b" xyz"),
    Case("single-quoted-json", 400, "bad-request", body=b"{'username': 'a', 'password': 'b'}"),
    Case("json-array", 400, "bad-request", body=as_json([GOOD_LOGIN])),
    Case("json-string", 400, "bad-request", body=as_json("alice@example.com")),
    Case("json-number", 400, "bad-request", body=b"42"),
    Case("json-null", 400, "bad-request", body=b"null"),
    Case("json-true", 400, "bad-request", body=b"true"),
    Case("empty-body", 400, "bad-request", body=b""),
    Case("whitespace-body", 400, "bad-request", body=b"  \n "),
    Case("invalid-utf8", 400, "bad-request",
         body=b'{"username": "al\xffce@example.com", "password": "\xc3\x28"}'),
    Case("deeply-nested-json", 400, "bad-request", body=b"[" * 30_000 + b"]" * 30_000),
    Case("huge-integer", 400, "bad-request", body=b'{"username": ' + b"9" * 5000 + b"}"),
    Case("mfa-json-array", 400, "bad-request", path=MFA, body=b'["123456"]'),
    # --- missing and extra fields ---
    Case("empty-object", 400, "validation-error", body=b"{}",
         fields=("username", "password")),
    Case("missing-username", 400, "validation-error", body=login_with(username=...),
         fields=("username",)),
    Case("missing-password", 400, "validation-error", body=login_with(password=...),
         fields=("password",)),
    Case("missing-mfa-code", 400, "validation-error", path=MFA, body=b"{}",
         fields=("mfa_code",)),
    Case("extra-login-field", 400, "validation-error", body=login_with(remember_me=True),
         fields=("remember_me",)),
    Case("extra-mfa-field", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": "123456", "trust_device": True}), fields=("trust_device",)),
    Case("mfa-fields-sent-to-login", 400, "validation-error",
         body=as_json({"mfa_code": "123456"}), fields=("mfa_code", "username", "password")),
    # --- wrong types ---
    Case("username-int", 400, "validation-error", body=login_with(username=12345),
         fields=("username",)),
    Case("username-list", 400, "validation-error", body=login_with(username=["alice"]),
         fields=("username",)),
    Case("username-null", 400, "validation-error", body=login_with(username=None),
         fields=("username",)),
    Case("username-bool", 400, "validation-error", body=login_with(username=True),
         fields=("username",)),
    Case("username-object", 400, "validation-error",
         body=login_with(username={"email": "alice@example.com"}), fields=("username",)),
    Case("password-int", 400, "validation-error", body=login_with(password=123456),
         fields=("password",)),
    Case("password-list", 400, "validation-error", body=login_with(password=["pw"]),
         fields=("password",)),
    Case("password-null", 400, "validation-error", body=login_with(password=None),
         fields=("password",)),
    Case("password-bool", 400, "validation-error", body=login_with(password=False),
         fields=("password",)),
    Case("password-object", 400, "validation-error", body=login_with(password={"a": "b"}),
         fields=("password",)),
    Case("password-float", 400, "validation-error", body=login_with(password=1.5),
         fields=("password",)),
    Case("mfa-code-int", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": 123456}), fields=("mfa_code",)),
    Case("mfa-code-list", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": ["123456"]}), fields=("mfa_code",)),
    Case("mfa-code-null", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": None}), fields=("mfa_code",)),
    Case("mfa-code-bool", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": True}), fields=("mfa_code",)),
    Case("mfa-code-object", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": {"code": "123456"}}), fields=("mfa_code",)),
    # --- lengths and patterns ---
    Case("empty-username", 400, "validation-error", body=login_with(username=""),
         fields=("username",)),
    Case("empty-password", 400, "validation-error", body=login_with(password=""),
         fields=("password",)),
    Case("username-255-chars", 400, "validation-error",
         body=login_with(username="a" * 243 + "@example.com"), fields=("username",)),
    Case("password-257-chars", 400, "validation-error", body=login_with(password="p" * 257),
         fields=("password",)),
    Case("mfa-code-empty", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": ""}), fields=("mfa_code",)),
    Case("mfa-code-non-digits", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": "12ab56"}), fields=("mfa_code",)),
    Case("mfa-code-spaces", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": "123 456"}), fields=("mfa_code",)),
    Case("mfa-code-trailing-newline", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": "123456\n"}), fields=("mfa_code",)),
    Case("mfa-code-unicode-digits", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": "\u0661\u0662\u0663\u0664\u0665\u0666"}),
         fields=("mfa_code",)),
    Case("mfa-code-too-short", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": "123"}), fields=("mfa_code",)),
    Case("mfa-code-too-long", 400, "validation-error", path=MFA,
         body=as_json({"mfa_code": "12345678901"}), fields=("mfa_code",)),
    # --- size and media type ---
    Case("body-over-64-kib", 413, "payload-too-large",
         body=login_with(password="p" * 200) + b" " * (64 * 1024)),
    Case("mfa-body-over-64-kib", 413, "payload-too-large", path=MFA,
         body=b'{"mfa_code": "' + b"1" * (64 * 1024 + 1) + b'"}'),
    Case("text-plain", 415, "unsupported-media-type", body=as_json(GOOD_LOGIN),
         content_type="text/plain"),
    Case("form-encoded", 415, "unsupported-media-type",
         body=b"username=alice%40example.com&password=pw-correct-horse",
         content_type="application/x-www-form-urlencoded"),
    Case("no-content-type", 415, "unsupported-media-type", body=as_json(GOOD_LOGIN),
         content_type=None),
    Case("json-lookalike-type", 415, "unsupported-media-type", body=as_json(GOOD_LOGIN),
         content_type="application/jsonp"),
    Case("mfa-text-plain", 415, "unsupported-media-type", path=MFA, body=b"123456",
         content_type="text/plain"),
    # --- routes and methods ---
    Case("unknown-api-route", 404, "not-found", path="/api/v1/garmin/session/logout"),
    Case("unknown-api-version", 404, "not-found", method="GET", path="/api/v2/garmin/session"),
    Case("unknown-root-route", 404, "not-found", method="GET", path="/admin", user=None),
    Case("put-on-login", 405, "method-not-allowed", method="PUT", body=as_json(GOOD_LOGIN)),
    Case("get-on-login", 405, "method-not-allowed", method="GET", content_type=None),
    Case("post-on-status", 405, "method-not-allowed", path=STATUS, body=b"{}"),
    Case("delete-on-status", 405, "method-not-allowed", method="DELETE", path=STATUS,
         content_type=None),
    Case("get-on-session", 405, "method-not-allowed", method="GET", path=SESSION,
         content_type=None),
    Case("patch-on-mfa", 405, "method-not-allowed", method="PATCH", path=MFA, body=b"{}"),
    Case("post-on-healthz", 405, "method-not-allowed", path="/healthz", user=None),
    # --- query ---
    Case("refresh-maybe", 400, "bad-request", method="GET", path=STATUS + "?refresh=maybe",
         content_type=None),
    Case("refresh-number", 400, "bad-request", method="GET", path=STATUS + "?refresh=2",
         content_type=None),
    # --- X-User-Id ---
    Case("user-id-missing", 400, "invalid-user-id", user=None, body=as_json(GOOD_LOGIN)),
    Case("user-id-empty", 400, "invalid-user-id", user="", body=as_json(GOOD_LOGIN)),
    Case("user-id-65-chars", 400, "invalid-user-id", user="u" * 65, body=as_json(GOOD_LOGIN)),
    Case("user-id-spaces", 400, "invalid-user-id", user="user 1", body=as_json(GOOD_LOGIN)),
    Case("user-id-slash", 400, "invalid-user-id", user="user/1", body=as_json(GOOD_LOGIN)),
    Case("user-id-dot-dot-slash", 400, "invalid-user-id", method="DELETE", path=SESSION,
         user="../user-1", content_type=None),
    Case("user-id-unicode", 400, "invalid-user-id", method="GET", path=STATUS,
         user="us\u00e9r-1", content_type=None),
    Case("user-id-sql-ish", 400, "invalid-user-id", method="DELETE", path=SESSION,
         user="user-1' OR '1'='1", content_type=None),
    Case("user-id-65-chars-on-delete", 400, "invalid-user-id", method="DELETE",
         path=SESSION, user="user-1" + "x" * 59, content_type=None),
]


def headers_for(case: Case) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {API_KEY}", **case.headers}
    if case.user is not None:
        headers["X-User-Id"] = case.user
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    return headers


async def send(api: Api, case: Case) -> Any:
    return await api.client.request(case.method, case.path, data=case.body,
                                    headers=headers_for(case))


async def check_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is the promised problem document and nothing leaked into it."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/problem+json"
    assert "Traceback" not in text and 'File "' not in text
    body = json.loads(text)
    assert isinstance(body, dict)
    for key in ("type", "title", "detail"):
        assert isinstance(body[key], str) and body[key]
    assert body["status"] == status
    return body


@pytest.fixture
async def connected(api: Api, sandbox: Sandbox) -> list[dict[str, Any]]:
    """user-1 holds a valid session; returns the rows as stored."""
    await connect(api, sandbox)
    rows = await raw_rows(api)
    assert len(rows) == 1 and rows[0]["session_data"]
    return rows


def test_the_table_is_large_and_ids_are_unique() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_malformed_input_is_a_4xx_problem_and_changes_nothing(
    api: Api, sandbox: Sandbox, connected: list[dict[str, Any]], case: Case,
    caplog: pytest.LogCaptureFixture,
) -> None:
    login_attempts = sandbox.state.get_account("alice@example.com").login_attempts
    with caplog.at_level(logging.ERROR):
        response = await send(api, case)
        body = await check_problem(response, case.status)
    assert body["type"].endswith("/" + case.slug)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an error was logged"
    if case.fields:
        assert sorted(error["field"] for error in body["errors"]) == sorted(case.fields)
        for name in case.fields:
            assert name in body["detail"]
    if case.status == 405:
        assert response.headers["Allow"]
        assert case.method not in response.headers["Allow"].split(", ")
    assert await raw_rows(api) == connected
    assert sandbox.state.get_account("alice@example.com").login_attempts == login_attempts
    status = await (await api.status("user-1")).json()
    assert status["status"] == "VALID"


async def test_malformed_input_for_a_new_user_creates_no_row(api: Api) -> None:
    for case in CASES:
        if case.user == "user-1":
            response = await send(api, dataclasses.replace(case, user="user-new"))
            assert 400 <= response.status < 500, case.id
    assert await raw_rows(api) == []


async def test_body_of_exactly_64_kib_is_read_not_refused(api: Api) -> None:
    prefix = b'{"username": "", "password": "x"}'
    body = prefix + b" " * (64 * 1024 - len(prefix))
    assert len(body) == 64 * 1024
    response = await api.client.post(LOGIN, data=body,
                                     headers={**api.headers("user-1"), "Content-Type": JSON})
    problem = await check_problem(response, 400)
    assert problem["errors"] == [{"field": "username", "problem": "must be 1 to 254 characters"}]


async def test_boundary_lengths_pass_validation(api: Api, sandbox: Sandbox) -> None:
    """254-character usernames and 256-character passwords reach Garmin (which says no)."""
    sandbox.add("alice@example.com")
    response = await api.login("user-1", "a" * 242 + "@example.com", password="p" * 256)
    assert response.status == 422
    assert (await response.json())["type"].endswith("garmin-invalid-credentials")


async def test_charset_parameter_on_json_is_accepted(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    response = await api.client.post(
        LOGIN, data=as_json(GOOD_LOGIN),
        headers={**api.headers("user-1"), "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status == 200


@pytest.mark.parametrize(
    "body",
    [
        {**GOOD_LOGIN, "password": ECHO_PASSWORD, "extra": "field"},
        {"username": 42, "password": ECHO_PASSWORD},
        {"username": "", "password": ECHO_PASSWORD},
        {"password": ECHO_PASSWORD},
        {"username": "alice@example.com", "password": ECHO_PASSWORD * 20},
        {"username": ECHO_PASSWORD + "x" * 250, "password": ECHO_PASSWORD},
    ],
    ids=["extra-field", "bad-username-type", "empty-username",
         "missing-username", "password-too-long", "username-too-long"],
)
async def test_password_is_never_echoed_in_an_error(
    api: Api, sandbox: Sandbox, body: dict[str, Any]
) -> None:
    sandbox.add("alice@example.com")
    response = await api.client.post(LOGIN, json=body, headers=api.headers("user-1"))
    assert 400 <= response.status < 500
    text = await response.text()
    assert ECHO_PASSWORD not in text
    assert ECHO_PASSWORD[:10] not in text
    assert await raw_rows(api) == []


async def test_wrong_password_from_garmin_is_not_echoed(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    response = await api.login("user-1", "alice@example.com", password=ECHO_PASSWORD)
    assert response.status == 422
    assert ECHO_PASSWORD not in await response.text()


async def test_empty_refresh_and_empty_dates_are_rejected(api: Api) -> None:
    """An empty value is not "absent": the documented types refuse it (400, not a default)."""
    for path in ("/api/v1/garmin/session/status?refresh=",
                 "/api/v1/garmin/activities?since=", "/api/v1/garmin/activities?until="):
        response = await api.client.get(path, headers=api.headers("user-1"))
        assert response.status == 400, path
        assert response.content_type == "application/problem+json"
