"""The HTTP/1.1 answer parser of the webhook sender, fed answers split every way they can
arrive, and answers whose connection must not be kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.webhooks.http1 import Connection


class Wire(asyncio.Transport):
    """A transport that only says whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def abort(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("answer", "status", "reusable"), [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 200, True),
    (b"HTTP/1.1 500 Oops\r\ncontent-length: 3\r\nConnection: close\r\n\r\nabc", 500, False),
    (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, True),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
     b"3\r\nabc\r\n10 ; x=y\r\n0123456789abcdef\r\n0\r\nT: 1\r\nU: 2\r\n\r\n", 200, True),
    (b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
     307, True),
])
async def test_answers_parse_alike_however_they_arrive(
        answer: bytes, status: int, reusable: bool) -> None:
    pieces = [[answer[:cut], answer[cut:]] for cut in range(1, len(answer))]
    pieces.append([answer[i:i + 1] for i in range(len(answer))])
    for split in pieces:
        connection = Connection()
        connection.connection_made(Wire())
        waiter = connection.exchange(b"request")
        for piece in split[:-1]:
            connection.data_received(piece)
            assert not waiter.done(), split
        connection.data_received(split[-1])
        assert waiter.result() == status
        assert connection.reusable is reusable


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\n\r\nup to the end",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nup to the end",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\n\r\nstray",
])
async def test_answers_framed_by_the_end_or_ambiguously_are_not_kept(answer: bytes) -> None:
    connection = Connection()
    connection.connection_made(Wire())
    waiter = connection.exchange(b"request")
    connection.data_received(answer)
    assert waiter.result() in (200, 204)
    assert connection.reusable is False
