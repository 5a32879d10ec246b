"""A scripted Garmin for the DI engine's unit tests: each path answers what the test queued.

The answers are shapes assumed from ha-garmin 0.1.53's parsing and Garmin's observed
answers (named where a test relies on one); the sandbox is the fuller stand-in. Requests
arrive routed as the engine sends them to a base URL: `/<subdomain><path>`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from service.garmin import GarminSettings

SIGN_IN_PAGE = "<html><head><title>GARMIN Authentication Application</title></head></html>"
TOKEN = "/diauth/di-oauth2-service/oauth/token"
MOBILE_SIGN_IN = "/sso/mobile/sso/en_US/sign-in"
MOBILE_LOGIN = "/sso/mobile/api/login"
MOBILE_CODE = "/sso/mobile/api/mfa/verifyCode"
PORTAL_SIGN_IN = "/sso/portal/sso/en-US/sign-in"
PORTAL_LOGIN = "/sso/portal/api/login"
PORTAL_CODE = "/sso/portal/api/mfa/verifyCode"
PROFILE = "/connectapi/userprofile-service/socialProfile"


def jwt(exp: int, client_id: str = "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2",
        subject: str = "user") -> str:
    """An unsigned JWT with the claims ha-garmin reads (`client_id`, `exp`)."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
    claims = {"exp": exp, "client_id": client_id, "sub": subject}
    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


@dataclass
class Answer:
    status: int = 200
    json: Any = None
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the server stops): the client's timeout ends it


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    body: Any
    cookies: dict[str, str]
    query: str = ""  # as sent, percent-encoded


Handler = Callable[[Received], Answer]


def ticket_login() -> Answer:
    return Answer(json={"responseStatus": {"type": "SUCCESSFUL"}, "serviceTicketId": "ST-1"})


def tokens(access: str, refresh: str) -> Answer:
    return Answer(json={"access_token": access, "refresh_token": refresh,
                        "token_type": "Bearer", "expires_in": 3600})


class FakeGarmin:
    """Answers queued per (method, path); the last answer of a queue repeats. Unscripted
    paths answer 404."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[Received] = []
        self._answers: dict[tuple[str, str], list[Answer | Handler]] = {}

    def on(self, method: str, path: str, *answers: Answer | Handler) -> None:
        self._answers[(method, path)] = list(answers)

    def signs_in(self, exp: int, refresh: str = "r1") -> None:
        """The happy mobile sign-in: page, ticket, tokens."""
        self.on("GET", MOBILE_SIGN_IN, Answer(text=SIGN_IN_PAGE, cookies={"SESSION": "s1"}))
        self.on("GET", PORTAL_SIGN_IN, Answer(text=SIGN_IN_PAGE, cookies={"SESSION": "s1"}))
        self.on("POST", MOBILE_LOGIN, ticket_login())
        self.on("POST", PORTAL_LOGIN, ticket_login())
        self.on("POST", TOKEN, tokens(jwt(exp), refresh))

    def posts(self, path: str) -> list[Received]:
        return [r for r in self.received if r.method == "POST" and r.path == path]

    def settings(self, **overrides: Any) -> GarminSettings:
        values: dict[str, Any] = {"base_url": self.url, "timeout_seconds": 5, "retries": 0,
                                  "di_login_delays": False}
        return GarminSettings(**{**values, **overrides})

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        form = dict(await request.post()) if request.content_type.endswith("urlencoded") else {}
        body = json.loads(raw) if raw and request.content_type == "application/json" else None
        received = Received(request.method, request.path, dict(request.headers),
                            {k: str(v) for k, v in form.items()}, body, dict(request.cookies),
                            request.raw_path.partition("?")[2])
        self.received.append(received)
        queue = self._answers.get((request.method, request.path))
        if not queue:
            return web.Response(status=404, text="not scripted")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(answer):
            answer = answer(received)
        if answer.hang:
            await asyncio.Event().wait()
        if answer.json is not None:
            response = web.json_response(answer.json, status=answer.status,
                                         headers=answer.headers)
        else:
            response = web.Response(status=answer.status, text=answer.text,
                                    headers=answer.headers, content_type="text/html")
        for name, value in answer.cookies.items():
            response.set_cookie(name, value)
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app
