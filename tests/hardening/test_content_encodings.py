"""Request bodies come without a Content-Encoding (identity) or are refused with a 415
problem before anything reads them; a body that breaks HTTP framing is a 400 problem."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, TransferEncodingError
from aiohttp.test_utils import make_mocked_request
from hypothesis import strategies as st

from service.api.middleware import error_response
from tests.support.app import API_KEY, Api, Sandbox
from tests.support.properties import check_property
from tests.support.rawhttp import exchange, request_bytes

LOGIN = "/api/v1/garmin/session/login"
MFA = "/api/v1/garmin/session/mfa"
SYNC = "/api/v1/garmin/sync"
PROBLEM_JSON = "application/problem+json"
GOOD_LOGIN = json.dumps({"username": "alice@example.com", "password": "pw-correct-horse"}).encode()
AUTH = [("Authorization", f"Bearer {API_KEY}"), ("X-User-Id", "user-1")]

codings = st.one_of(
    st.sampled_from(["gzip", "deflate", "br", "zstd", "compress", "x-gzip", "GZIP", "Br",
                     "gzip, identity", "identity, gzip", "identity,br", "chunked", "*"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
    .filter(lambda token: token.lower() != "identity"),
)
bodies = st.one_of(
    st.just(gzip.compress(GOOD_LOGIN)), st.just(zlib.compress(GOOD_LOGIN)),
    st.just(gzip.compress(b"{" * 100_000)), st.just(GOOD_LOGIN), st.binary(max_size=200),
)


async def test_every_content_encoding_but_identity_is_a_415_problem(api: Api) -> None:
    async def refused(path: str, coding: str, body: bytes) -> None:
        answer = await exchange(api.client, request_bytes(
            "POST", path, [*AUTH, ("Content-Type", "application/json"),
                           ("Content-Encoding", coding)], body))
        assert answer.status == 415, (answer.status, answer.body)
        assert answer.content_type == PROBLEM_JSON
        assert answer.json()["type"].endswith("/unsupported-content-encoding")

    await check_property(refused, max_examples=120, path=st.sampled_from([LOGIN, MFA, SYNC]),
                         coding=codings, body=bodies)


async def test_an_identity_encoded_body_is_read_as_it_is(api: Api, sandbox: Sandbox) -> None:
    sandbox.add("alice@example.com")
    for coding in ("identity", "Identity", " identity "):
        answer = await exchange(api.client, request_bytes(
            "POST", LOGIN, [*AUTH, ("Content-Type", "application/json"),
                            ("Content-Encoding", coding)], GOOD_LOGIN))
        assert answer.status == 200, answer.body


@pytest.mark.parametrize("exc", [
    TransferEncodingError("Not enough data to satisfy transfer length header."),
    ContentEncodingError("Can not decode content-encoding: gzip"),
    web.RequestPayloadError("Expected LF after chunk data"),
], ids=["transfer-encoding", "content-encoding", "payload"])
def test_a_body_aiohttp_cannot_read_is_a_400_problem_naming_none_of_it(exc: Exception) -> None:
    """What aiohttp raises from `request.read()` when the body breaks HTTP framing after the
    head reached the app (framing broken within the first packet is answered by aiohttp's
    parser itself, before any application code runs, as a text/plain 400)."""
    response = error_response(make_mocked_request("POST", LOGIN), exc)
    assert response.status == 400
    assert response.content_type == PROBLEM_JSON
    assert response.text is not None and "chunk" not in response.text
