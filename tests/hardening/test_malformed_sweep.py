"""A sweep of malformed requests over every route: no answer is ever a 5xx.

Every route the app serves (read from its router, so a route added later is swept too) gets
bad query parameters, forged cursors, bad, missing and repeated headers (X-User-Id,
Authorization, Content-Type, Content-Encoding, Content-Length), bad bodies and encodings.
First each malformation alone on an otherwise good request, on every route; then
Hypothesis combines them. Requests go out as raw bytes: no client library would send most
of them. An answer the application gave (it carries X-Request-Id) that is an error is
problem+json; what aiohttp's parser refuses before the application runs is its own 400.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from urllib.parse import quote

from hypothesis import strategies as st

from tests.support.app import API_KEY, Api, Sandbox, connect, drain
from tests.support.properties import check_property
from tests.support.rawhttp import RawResponse, exchange_or_hang_up, request_bytes

PROBLEM_JSON = "application/problem+json"
GOOD_AUTH = ("Authorization", f"Bearer {API_KEY}")
GOOD_USER = ("X-User-Id", "user-1")
JSON_TYPE = ("Content-Type", "application/json")
PARAMS = ("limit", "cursor", "since", "until", "type", "from", "to", "refresh", "status",
          "kinds", "x")

BAD_VALUES = (
    "", "-1", "0", "1e3", "0x10", "NaN", "nan", "inf", "99999999999999999999999999",
    "9223372036854775808", "-9223372036854775809", "\u0661\u0662", "\U0001d7d9\U0001d7da",
    "\uff34\uff32\uff35\uff25", "true", "yes",
    "%00", "%ff%fe", "%", "%zz", "a%00b", "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59", "2024-02-30", "2024-13-01", "+002024-01-01",
    "2024-01-01T25:00:00", "x" * 5000, "MTI", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkw",
    "eyJhIjoxfQ.AAAAAAAAAAAAAAAAAAAAAA", "W10.", ".", "..", "Ww.Ww",
)
BODIES = (
    b"", b"{", b"[]", b"[1, 2]", b'"text"', b"42", b"null", b"true", b"{}",
    b'{"kinds": []}', b'{"kinds": "health"}', b'{"kinds": [1e999]}',
    b"[" * 50_000 + b"]" * 50_000, b"{\"a\":" * 30_000 + b"1" + b"}" * 30_000,
    json.dumps({"username": "a" * 70_000, "password": "b"}).encode(),
    json.dumps({"username": "a" * 40_000, "password": "b" * 20_000}).encode(),
    b'\xff\xfe{"username": "a"}', b'{"username": "\xc3\x28", "password": "x"}',
    b'{"username": "a\x00b", "password": "\x00"}', b'{"username": "\\u0000", "password": "x"}',
    b'{"username": "\\ud800", "password": "x"}', b'{"mfa_code": "\\u0661\\u0662\\u0663\\u0664"}',
    b'{"username": 1e999999, "password": 1}', b'{"a": 1, "a": 2}', b"\x00" * 64,
    b'{"username": "alice@example.com", "password": "pw-correct-horse"}',
    b'{"mfa_code": "123456"}', b'{"kinds": ["health"]}',
)
HEADER_SETS: tuple[tuple[tuple[str, str], ...], ...] = (
    (), (GOOD_USER,), (GOOD_AUTH,), (GOOD_AUTH, GOOD_USER, GOOD_USER),
    (GOOD_AUTH, GOOD_USER, ("X-User-Id", "user-2")), (GOOD_AUTH, ("X-User-Id", "")),
    (GOOD_AUTH, ("X-User-Id", "ü" * 10)), (GOOD_AUTH, ("X-User-Id", "u" * 65)),
    (GOOD_AUTH, ("X-User-Id", "../../etc")), (GOOD_AUTH, ("X-User-Id", "a\x01b")),
    (("Authorization", "Bearer"), GOOD_USER), (("Authorization", "Bearer wrong"), GOOD_USER),
    (("Authorization", "Basic dXNlcjpwYXNz"), GOOD_USER),
    (("Authorization", "Bearer " + "k" * 10_000), GOOD_USER),
    (("Authorization", "Bearer ключ"), GOOD_USER), (GOOD_AUTH, GOOD_AUTH, GOOD_USER),
    (("Authorization", "Bearer wrong"), GOOD_AUTH, GOOD_USER),
    (("X-Request-Id", "\x7f" * 200), GOOD_AUTH, GOOD_USER),
)
CONTENT_HEADERS: tuple[tuple[tuple[str, str], ...], ...] = (
    (), (JSON_TYPE,), (("Content-Type", "text/plain"),),
    (("Content-Type", "application/json; charset=latin-1"),),
    (("Content-Type", "application/json, text/plain"),), (JSON_TYPE, JSON_TYPE),
    (JSON_TYPE, ("Content-Type", "text/plain")), (("Content-Type", "multipart/form-data"),),
    (("Content-Type", "application/x-www-form-urlencoded"),), (("Content-Type", ";;;"),),
    (JSON_TYPE, ("Content-Encoding", "gzip")), (JSON_TYPE, ("Content-Encoding", "br")),
    (JSON_TYPE, ("Content-Encoding", "deflate")), (JSON_TYPE, ("Content-Encoding", "identity")),
    (JSON_TYPE, ("Content-Encoding", "gzip, br")),
    (JSON_TYPE, ("Content-Encoding", "identity"), ("Content-Encoding", "zstd")),
    (JSON_TYPE, ("Transfer-Encoding", "chunked")),
    (JSON_TYPE, ("Transfer-Encoding", "gzip, chunked")),
)
# Content-Length lies, by how it relates to the body: None = the body's true length
LENGTHS = (None, "abc", "-1", "+5", "0x10", "1 2", "short", "long", "both", "huge", "twice")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = (GOOD_AUTH, GOOD_USER)
    content: tuple[tuple[str, str], ...] = (JSON_TYPE,)
    body: bytes = b""
    length: str | None = None

    def encode(self) -> tuple[bytes, bool]:
        """The request's bytes, and whether it promises more body than it sends."""
        query = "&".join(f"{quote(name)}={_query_value(value)}" for name, value in self.query)
        target = self.path + (f"?{query}" if query else "")
        headers = [*self.headers, *self.content]
        body = self.body
        chunked = any(name == "Transfer-Encoding" for name, _ in self.content)
        if chunked and self.length is None:
            body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
        hangs = False
        if self.length == "short":
            headers.append(("Content-Length", str(max(0, len(body) - 3))))
        elif self.length in ("long", "huge"):
            size = len(body) + 10 if self.length == "long" else 10**20
            headers.append(("Content-Length", str(size)))
            hangs = True
        elif self.length == "both":
            headers += [("Content-Length", str(len(body))), ("Transfer-Encoding", "chunked")]
        elif self.length == "twice":
            headers += [("Content-Length", str(len(body))), ("Content-Length", str(len(body)))]
        elif self.length is not None:
            headers.append(("Content-Length", self.length))
        return request_bytes(self.method, target, headers, body,
                             content_length=not chunked or self.length is not None), hangs


def _query_value(value: str) -> str:
    """Percent-escapes are sent as they are (%00, a lone %), anything else quoted."""
    return value if re.fullmatch(r"[%A-Za-z0-9._~-]*", value) else quote(value, safe="")


def _routes(api: Api) -> list[tuple[str, str]]:
    routes = []
    for route in api.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or re.sub(r"\{[^}]*\}", "1", info.get("formatter", ""))
        if path and route.method != "HEAD":
            routes.append((route.method, path))
    return sorted(set(routes))


def _judge(call: Call, answer: RawResponse | None, hangs: bool) -> None:
    if answer is None:  # only a caller that hung up before sending its promised body
        assert hangs, call
        return
    assert answer.status < 500, (call, answer.status, answer.body[:300])
    if "x-request-id" in answer.headers and answer.status >= 400:
        assert answer.content_type == PROBLEM_JSON, (call, answer.status, answer.body[:300])


async def _send(api: Api, call: Call) -> None:
    data, hangs = call.encode()
    _judge(call, await exchange_or_hang_up(api.client, data, hang_up=hangs), hangs)


async def test_no_malformed_request_on_any_route_is_answered_with_a_5xx(
        api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox)  # user-1 has data, so calls that get through do real work
    sandbox.add("mfa@example.com", mfa_code="123456")
    routes = _routes(api)
    assert len(routes) >= 8
    methods = sorted({method for method, _ in routes} | {"PUT", "PATCH", "OPTIONS"})

    # each malformation alone, on every route
    for method, path in routes:
        good = Call(method, path)
        singles = [replace(good, query=((name, value),))
                   for name in PARAMS for value in BAD_VALUES]
        singles += [replace(good, query=(("limit", "1"), ("limit", "2"), ("cursor", "a"),
                                         ("cursor", "b"), ("from", "2024-01-01"),
                                         ("from", "2024-01-02")))]
        singles += [replace(good, headers=headers) for headers in HEADER_SETS]
        singles += [replace(good, content=content, body=b'{"kinds": ["health"]}')
                    for content in CONTENT_HEADERS]
        singles += [replace(good, body=body) for body in BODIES]
        singles += [replace(good, length=length, body=b'{"mfa_code": "123456"}')
                    for length in LENGTHS]
        singles += [replace(good, method=other) for other in methods if other != method]
        for call in singles:
            await _send(api, call)

    # and Hypothesis combining them
    bad_value = st.one_of(st.sampled_from(BAD_VALUES), st.integers().map(str),
                          st.text(max_size=40))
    calls = st.builds(
        Call,
        method=st.sampled_from(methods),
        path=st.sampled_from([path for _, path in routes] + ["/api/v1/garmin/nope", "/"]),
        query=st.lists(st.tuples(st.sampled_from(PARAMS), bad_value), max_size=4).map(tuple),
        headers=st.sampled_from(HEADER_SETS),
        content=st.sampled_from(CONTENT_HEADERS),
        body=st.one_of(st.sampled_from(BODIES), st.binary(max_size=300),
                       st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                                    lambda inner: st.lists(inner, max_size=3)
                                    | st.dictionaries(st.text(max_size=10), inner, max_size=3),
                                    max_leaves=8).map(lambda v: json.dumps(v).encode())),
        length=st.sampled_from(LENGTHS),
    )
    await check_property(lambda call: _send(api, call), max_examples=400, call=calls)
    await drain(api)
