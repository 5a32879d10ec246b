"""The webhook sender against raw asyncio servers that write exactly the bytes each test gives:
keep-alive and when not to keep, answer framing, the retry of a request a kept-alive
connection lost, timeouts, cancellation, the connection bound and the address guard."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from service.webhooks.http1 import MAX_HEAD
from service.webhooks.sender import ConnectionFailed, Sender, TargetRefused, encode_headers
from tests.support.rawserver import Raw, Reader, Writer, answering, self_signed, within

HEADERS = encode_headers([("content-type", "application/json"), ("webhook-id", "msg_1")])
NO_CONTENT = b"HTTP/1.1 204 No Content\r\n\r\n"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Raw]]]:
    servers: list[Raw] = []

    async def start(handle: Callable[[Raw, Reader, Writer], Awaitable[None]],
                    context: ssl.SSLContext | None = None) -> Raw:
        raw = Raw(handle)
        await raw.start(context)
        servers.append(raw)
        return raw

    yield start
    for raw in servers:
        assert raw.server is not None
        raw.server.close()


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    made = Sender(allow_private=True, connect_timeout=5, timeout=5, max_connections=4)
    yield made
    await made.close()


async def test_sequential_posts_share_one_kept_alive_connection(
        serve: Callable[..., Awaitable[Raw]], sender: Sender) -> None:
    raw = await serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfine."))
    for n in range(5):
        assert await sender.post(raw.url("/hook?n=1"), HEADERS, b'{"n": %d}' % n) == 200
    assert raw.connections == 1
    head, body = raw.requests[4]
    assert body == b'{"n": 4}'
    assert head == (b"POST /hook?n=1 HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n" % raw.port
                    + HEADERS + b"content-length: 8\r\n\r\n")


async def test_credentials_in_the_url_become_basic_authentication(
        serve: Callable[..., Awaitable[Raw]], sender: Sender) -> None:
    raw = await serve(answering(NO_CONTENT))
    url = raw.url("/hook").replace("http://", "http://hook%40example:p%3Ass%20w@")
    assert await sender.post(url, HEADERS, b"{}") == 204
    head, _ = raw.requests[0]
    # "hook@example:p:ss w", percent-decoded, in base64
    assert head.startswith(b"POST /hook HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
                           b"authorization: Basic aG9va0BleGFtcGxlOnA6c3Mgdw==\r\n"
                           % raw.port), head
    assert b"p%3Ass" not in head and b"hook%40example" not in head


async def test_connection_close_is_honoured(
        serve: Callable[..., Awaitable[Raw]], sender: Sender) -> None:
    # the server would go on reading: only the client's honouring closes the connection
    raw = await serve(answering(b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
                                b"Content-Length: 0\r\n\r\n"))
    for _ in range(3):
        assert await sender.post(raw.url(), HEADERS, b"{}") == 200
    assert raw.connections == 3


@pytest.mark.parametrize("answer", [
    b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n",  # more than is read to reuse
])
async def test_http_1_0_and_oversized_bodies_are_not_kept(
        serve: Callable[..., Awaitable[Raw]], sender: Sender, answer: bytes) -> None:
    raw = await serve(answering(answer))
    for _ in range(2):
        assert await sender.post(raw.url(), HEADERS, b"{}") == 200
    assert raw.connections == 2


async def test_a_chunked_body_is_read_and_the_connection_reused(
        serve: Callable[..., Awaitable[Raw]], sender: Sender) -> None:
    raw = await serve(answering(b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
                                b"5;note=x\r\nhello\r\n1A\r\n" + b"z" * 26 + b"\r\n"
                                b"0\r\nX-Trailer: t\r\n\r\n"))
    for _ in range(3):
        assert await sender.post(raw.url(), HEADERS, b"{}") == 202
    assert raw.connections == 1


async def test_a_body_until_the_end_of_the_connection_is_not_kept(
        serve: Callable[..., Awaitable[Raw]], sender: Sender) -> None:
    async def handle(raw: Raw, reader: Reader, writer: Writer) -> None:
        await raw.read(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of this, up to the end")
        await writer.drain()

    raw = await serve(handle)
    for _ in range(2):
        assert await sender.post(raw.url(), HEADERS, b"{}") == 200
    assert raw.connections == 2


async def test_interim_answers_are_skipped(
        serve: Callable[..., Awaitable[Raw]], sender: Sender) -> None:
    raw = await serve(answering(b"HTTP/1.1 100 Continue\r\n\r\n"
                                b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                                b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
    for _ in range(2):
        assert await sender.post(raw.url(), HEADERS, b"{}") == 201
    assert raw.connections == 1


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD,  # no end of head in sight
    b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n",
    b"HTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 200OK\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
])
async def test_malformed_answers_fail_the_attempt(
        serve: Callable[..., Awaitable[Raw]], sender: Sender, answer: bytes) -> None:
    raw = await serve(answering(answer))
    with pytest.raises(ConnectionFailed):
        await sender.post(raw.url(), HEADERS, b"{}")
    # the broken connection is not reused
    assert raw.connections == 1
    with pytest.raises(ConnectionFailed):
        await sender.post(raw.url(), HEADERS, b"{}")
    assert raw.connections == 2


async def test_a_request_a_kept_alive_connection_lost_is_sent_once_more_on_a_new_one(
        serve: Callable[..., Awaitable[Raw]], sender: Sender) -> None:
    # the first connection answers one request, then takes the next and closes, as a
    # receiver does when its idle timeout strikes while the request is on its way
    async def handle(raw: Raw, reader: Reader, writer: Writer) -> None:
        first = raw.connections == 1
        while await raw.read(reader):
            if first and len(raw.requests) == 2:
                return
            writer.write(NO_CONTENT)
            await writer.drain()

    raw = await serve(handle)
    assert await sender.post(raw.url(), HEADERS, b"{}") == 204
    assert await sender.post(raw.url(), HEADERS, b'{"second": 1}') == 204
    assert raw.connections == 2
    assert [body for _, body in raw.requests] == [b"{}", b'{"second": 1}', b'{"second": 1}']


async def test_a_kept_alive_connection_closed_while_idle_is_replaced(
        serve: Callable[..., Awaitable[Raw]], sender: Sender) -> None:
    closed = asyncio.Event()

    async def handle(raw: Raw, reader: Reader, writer: Writer) -> None:
        await raw.read(reader)
        writer.write(NO_CONTENT)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed.set()

    raw = await serve(handle)
    assert await sender.post(raw.url(), HEADERS, b"{}") == 204
    await within(closed.wait())
    assert await sender.post(raw.url(), HEADERS, b"{}") == 204
    assert raw.connections == 2 and len(raw.requests) == 2


async def test_bytes_past_the_answer_leave_the_connection_unused(
        serve: Callable[..., Awaitable[Raw]], sender: Sender) -> None:
    raw = await serve(answering(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"))
    for _ in range(2):
        assert await sender.post(raw.url(), HEADERS, b"{}") == 200
    assert raw.connections == 2


@pytest.mark.parametrize("partial", [b"", b"HTTP/1.1 200 O"])
async def test_a_new_connection_or_a_started_answer_is_not_retried(
        serve: Callable[..., Awaitable[Raw]], sender: Sender, partial: bytes) -> None:
    async def handle(raw: Raw, reader: Reader, writer: Writer) -> None:
        while await raw.read(reader):
            if len(raw.requests) == 2 or not partial:
                writer.write(partial)
                return
            writer.write(NO_CONTENT)

    raw = await serve(handle)
    if partial:  # a kept-alive connection first
        assert await sender.post(raw.url(), HEADERS, b"{}") == 204
    with pytest.raises(ConnectionFailed):
        await sender.post(raw.url(), HEADERS, b"{}")
    assert raw.connections == 1


async def test_an_answer_that_never_comes_times_out_and_its_connection_is_closed(
        serve: Callable[..., Awaitable[Raw]]) -> None:
    hung_up = asyncio.Event()

    async def handle(raw: Raw, reader: Reader, writer: Writer) -> None:
        if raw.connections == 1:
            await raw.read(reader)
            assert await reader.read() == b""  # nothing until the client closes
            hung_up.set()
            return
        await answering(NO_CONTENT)(raw, reader, writer)

    raw = await serve(handle)
    sender = Sender(allow_private=True, connect_timeout=5, timeout=0.2, max_connections=1)
    try:
        with pytest.raises(TimeoutError):
            await sender.post(raw.url(), HEADERS, b"{}")
        await within(hung_up.wait())
        assert await sender.post(raw.url(), HEADERS, b"{}") == 204
        assert raw.connections == 2
    finally:
        await sender.close()


async def test_a_refused_connection_fails_the_attempt(sender: Sender) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionFailed) as failed:
        await sender.post(f"http://127.0.0.1:{port}/secret-path", HEADERS, b"{}")
    assert "secret-path" not in str(failed.value)


async def test_a_cancelled_post_gives_its_connection_slot_back(
        serve: Callable[..., Awaitable[Raw]]) -> None:
    hung_up = asyncio.Event()

    async def handle(raw: Raw, reader: Reader, writer: Writer) -> None:
        if raw.connections == 1:
            await raw.read(reader)
            assert await reader.read() == b""
            hung_up.set()
            return
        await answering(NO_CONTENT)(raw, reader, writer)

    raw = await serve(handle)
    sender = Sender(allow_private=True, connect_timeout=5, timeout=5, max_connections=1)
    try:
        stuck = asyncio.create_task(sender.post(raw.url(), HEADERS, b"{}"))
        await raw.until(lambda: len(raw.requests) == 1)
        waiting = asyncio.create_task(sender.post(raw.url(), HEADERS, b"{}"))
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert await waiting == 204
        await within(hung_up.wait())  # the cancelled request's connection was closed
        assert await sender.post(raw.url(), HEADERS, b"{}") == 204
        assert raw.connections == 2
    finally:
        await sender.close()


async def test_concurrent_posts_never_open_more_than_the_bound(
        serve: Callable[..., Awaitable[Raw]]) -> None:
    gate = asyncio.Event()
    open_now = most = 0

    async def handle(raw: Raw, reader: Reader, writer: Writer) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            while await raw.read(reader):
                await gate.wait()
                writer.write(NO_CONTENT)
                await writer.drain()
        finally:
            open_now -= 1

    raw = await serve(handle)
    sender = Sender(allow_private=True, connect_timeout=5, timeout=5, max_connections=2)
    try:
        posts = [asyncio.create_task(sender.post(raw.url(), HEADERS, b"{}")) for _ in range(5)]
        await raw.until(lambda: len(raw.requests) >= 2)
        gate.set()
        assert await asyncio.gather(*posts) == [204] * 5
        assert (raw.connections, most, len(raw.requests)) == (2, 2, 5)
    finally:
        await sender.close()


async def test_idle_connections_past_their_time_are_not_reused(
        serve: Callable[..., Awaitable[Raw]]) -> None:
    raw = await serve(answering(NO_CONTENT))
    sender = Sender(allow_private=True, connect_timeout=5, timeout=5, max_connections=1,
                    idle_seconds=0)
    try:
        for _ in range(2):
            assert await sender.post(raw.url(), HEADERS, b"{}") == 204
        assert raw.connections == 2
    finally:
        await sender.close()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
async def test_loopback_is_refused_before_connecting_unless_allowed(
        serve: Callable[..., Awaitable[Raw]], host: str) -> None:
    raw = await serve(answering(NO_CONTENT))
    guarded = Sender(allow_private=False, connect_timeout=5, timeout=5, max_connections=1)
    try:
        with pytest.raises(TargetRefused):
            await guarded.post(raw.url(host=host), HEADERS, b"{}")
        with pytest.raises(TargetRefused):
            await guarded.post(raw.url(scheme="ftp"), HEADERS, b"{}")
    finally:
        await guarded.close()
    assert raw.connections == 0


async def test_a_closed_sender_sends_nothing(
        serve: Callable[..., Awaitable[Raw]], sender: Sender) -> None:
    raw = await serve(answering(NO_CONTENT))
    assert await sender.post(raw.url(), HEADERS, b"{}") == 204
    await sender.close()
    with pytest.raises(ConnectionFailed):
        await sender.post(raw.url("/other"), HEADERS, b"{}")
    with pytest.raises(ConnectionFailed):
        await sender.post(raw.url(), HEADERS, b"{}")
    assert len(raw.requests) == 1


def test_header_blocks_refuse_line_breaks() -> None:
    assert encode_headers([("a", "1"), ("b", "2")]) == b"a: 1\r\nb: 2\r\n"
    with pytest.raises(ValueError, match="line break"):
        encode_headers([("webhook-id", "x\r\nhost: elsewhere")])


# --- https ------------------------------------------------------------------------------


async def test_https_verifies_the_certificate_and_keeps_the_connection(
        serve: Callable[..., Awaitable[Raw]], tmp_path: Path) -> None:
    cert, key, pem = self_signed(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    raw = await serve(answering(NO_CONTENT), server_context)
    trusting = Sender(allow_private=True, connect_timeout=5, timeout=5, max_connections=1,
                      ssl_context=ssl.create_default_context(cadata=pem.decode()))
    default = Sender(allow_private=True, connect_timeout=5, timeout=5, max_connections=1)
    try:
        for _ in range(2):
            assert await trusting.post(raw.url(host="localhost", scheme="https"),
                                       HEADERS, b"{}") == 204
        assert raw.connections == 1
        assert raw.requests[0][0].startswith(b"POST /hook HTTP/1.1\r\nhost: localhost:%d\r\n"
                                             % raw.port)
        with pytest.raises(ConnectionFailed):  # not a certificate the system trusts
            await default.post(raw.url(host="localhost", scheme="https"), HEADERS, b"{}")
    finally:
        await trusting.close()
        await default.close()
