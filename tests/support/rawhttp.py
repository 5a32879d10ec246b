"""HTTP/1.1 as bytes on a socket: for requests no HTTP client library will send (duplicate
or contradictory headers, broken chunked framing, bodies that lie about their length)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient

TIMEOUT = 10


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names, last wins
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(method: str, target: str, headers: list[tuple[str, str]] | None = None,
                  body: bytes = b"", *, content_length: bool = True) -> bytes:
    """One request that closes its connection; `Content-Length` is added unless a header
    list already has one or `content_length` is False."""
    lines = [f"{method} {target} HTTP/1.1", "Host: test", "Connection: close"]
    given = headers or []
    lines += [f"{name}: {value}" for name, value in given]
    names = {name.lower() for name, _ in given}
    if content_length and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body


async def exchange(client: TestClient[Any, Any], data: bytes) -> RawResponse:
    """Send `data` to the client's server and read the answer up to the connection's end."""
    answer = await exchange_or_hang_up(client, data, hang_up=False)
    assert answer is not None, "the connection closed without an answer"
    return answer


async def exchange_or_hang_up(client: TestClient[Any, Any], data: bytes,
                              hang_up: bool) -> RawResponse | None:
    """As `exchange`; with `hang_up`, the sending side is closed after `data` (for a request
    promising more body than it sends), and None says the server answered nothing."""
    server = client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(data)
        await writer.drain()
        if hang_up:
            writer.write_eof()
        raw = await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()
    if not raw:
        return None
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(status, headers, body)
