"""One HTTP/1.1 client connection as an asyncio `Protocol`, for `service.webhooks.sender`.

`exchange` writes a whole request and gives a future of the answer's status, completed by
`data_received` once the answer is parsed: the head (bounded by `MAX_HEAD`, 1xx interim
answers skipped), then the body, read and thrown away, framed by `Content-Length` or chunked
encoding (trailers ignored). An answer framed by the end of the connection completes with
its head and is never reused; so is a body over `MAX_BODY`. `reusable` then says whether
the connection may carry another request: HTTP/1.1, no `Connection: close`, nothing left
over. Anything not HTTP/1.x fails the future with `ConnectionFailed`, and so does the
connection ending first (`received` tells whether any byte of the answer came).
"""

from __future__ import annotations

import asyncio
import re

MAX_HEAD = 64 * 1024  # status line and headers of one answer
MAX_BODY = 4 * 1024 * 1024  # read beyond this: the connection is closed instead of reused
READ_SIZE = 16 * 1024
_HEX = re.compile(rb"[0-9a-fA-F]{1,15}")


class ConnectionFailed(OSError):
    """No status came back: cannot connect, the connection ended early, or the answer is
    not HTTP/1.x."""


def encode_headers(pairs: list[tuple[str, str]]) -> bytes:
    """`pairs` as a header block for `Sender.post`, refusing CR and LF in names or values."""
    lines = []
    for name, value in pairs:
        if "\r" in name or "\n" in name or ":" in name or "\r" in value or "\n" in value:
            raise ValueError("a header name or value holds a line break or colon")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


class Connection(asyncio.BufferedProtocol):
    """One connection: `exchange` writes a request and waits for its parsed answer.

    A buffered protocol: the transport reads into one buffer of the connection's own
    instead of allocating (and, at its default read size, mapping) one per read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.alive = True
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiter: asyncio.Future[int] | None = None
        self.received = False  # a byte of the current answer arrived
        self.reusable = False
        self.idle_since = 0.0
        self._view = memoryview(bytearray(READ_SIZE))  # what the transport reads into
        self._buffer = bytearray()  # what is read and not parsed yet
        self._scanned = 0  # of the buffer, searched for the end of the head
        self._status = 0
        self._keep = False
        # 0 head, 1 body by length, 2 chunk size, 3 chunk data, 5 its CRLF, 4 trailers
        self._state = 0
        self._remaining = 0
        self._read = 0  # body and trailer bytes of this answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self._fail("the connection ended before a whole answer arrived")
        if not self.lost.done():
            self.lost.set_result(None)

    def eof_received(self) -> bool | None:
        return None  # nothing more will come: close

    def close(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.abort()

    def exchange(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        waiter = self.waiter = self.lost.get_loop().create_future()
        self.received = self.reusable = False
        self._state = self._read = self._scanned = 0
        if self.alive and not self.transport.is_closing():
            self.transport.write(request)
        else:
            self._fail("the connection is closed")
        return waiter

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._view[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():  # bytes nobody asked for: out of step
            self.close()
            return
        self.received = True
        self._buffer += data
        try:
            done = self._parse()
        except ConnectionFailed as exc:
            self.alive = False
            waiter.set_exception(exc)
            return
        if done:
            self.reusable = self._keep and not self._buffer
            waiter.set_result(self._status)

    def _fail(self, message: str) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionFailed(message))

    def _parse(self) -> bool:
        """Consume what is buffered; True once the answer is complete."""
        buffer = self._buffer
        while True:
            state = self._state
            if state == 0:
                end = buffer.find(b"\r\n\r\n", self._scanned)
                if end < 0:
                    if len(buffer) > MAX_HEAD:
                        raise ConnectionFailed("the answer's head is too large")
                    self._scanned = max(0, len(buffer) - 3)
                    return False
                if end > MAX_HEAD:
                    raise ConnectionFailed("the answer's head is too large")
                head = bytes(buffer[:end]).lower()
                del buffer[:end + 4]
                self._scanned = 0
                if self._head(head):
                    return True
            elif state == 1:
                taken = min(len(buffer), self._remaining)
                del buffer[:taken]
                self._remaining -= taken
                return self._remaining == 0
            elif state == 2:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 1024:
                        raise ConnectionFailed("malformed chunked body")
                    return False
                digits = bytes(buffer[:end]).split(b";", 1)[0].rstrip(b" \t")
                if not _HEX.fullmatch(digits):
                    raise ConnectionFailed("malformed chunked body")
                del buffer[:end + 2]
                size = int(digits, 16)
                self._read += size
                if self._read > MAX_BODY:
                    self._keep = False
                    return True
                self._state, self._remaining = (4, 0) if size == 0 else (3, size)
            elif state == 3:
                taken = min(len(buffer), self._remaining)
                del buffer[:taken]
                self._remaining -= taken
                if self._remaining:
                    return False
                self._state = 5
            elif state == 5:  # the CRLF closing a chunk
                if len(buffer) < 2:
                    return False
                if buffer[:2] != b"\r\n":
                    raise ConnectionFailed("malformed chunked body")
                del buffer[:2]
                self._state = 2
            else:  # trailers, thrown away, up to an empty line
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD:
                        raise ConnectionFailed("the answer's trailers are too large")
                    return False
                del buffer[:end + 2]
                if end == 0:
                    return True
                self._read += end
                if self._read > MAX_BODY + MAX_HEAD:
                    raise ConnectionFailed("the answer's trailers are too large")

    def _head(self, head: bytes) -> bool:
        """Read a lowercased head; True when the answer is complete with it."""
        lines = head.split(b"\r\n")
        line = lines[0]
        if (len(line) < 12 or not line.startswith(b"http/1.") or line[7] not in b"01"
                or line[8] != 32 or not line[9:12].isdigit()
                or (len(line) > 12 and line[12] != 32)):
            raise ConnectionFailed("the answer is not HTTP/1.x")
        status = int(line[9:12])
        if status < 100 or status == 101:  # no upgrade was asked for
            raise ConnectionFailed("the answer is not HTTP/1.x")
        if status < 200:  # interim: the real answer follows
            return False
        keep = line[7] == 49  # HTTP/1.1; HTTP/1.0 connections are not kept
        length: bytes | None = None
        chunked = framed_by_end = False
        for field in lines[1:]:
            name, colon, value = field.partition(b":")
            if not colon or not name or name[-1] in b" \t" or name[0] in b" \t":
                raise ConnectionFailed("the answer has a malformed header")
            if name == b"content-length":
                value = value.strip(b" \t")
                if not value.isdigit() or len(value) > 18 or (length not in (None, value)):
                    raise ConnectionFailed("the answer has a malformed Content-Length")
                length = value
            elif name == b"transfer-encoding":
                codings = [c.strip(b" \t") for c in value.split(b",")]
                chunked = codings[-1] == b"chunked"
                framed_by_end = not chunked
            elif name == b"connection" and b"close" in (t.strip(b" \t") for t in value.split(b",")):
                keep = False
        self._status = status
        if status in (204, 304):  # never a body, whatever the headers say
            self._keep = keep
            return True
        if chunked or framed_by_end:
            self._keep = keep and not framed_by_end and length is None
            self._state = 2
            return framed_by_end  # framed by the end of the connection: not read, not kept
        if length is None:
            self._keep = False
            return True
        self._keep = keep
        self._remaining = int(length)
        if self._remaining > MAX_BODY:
            self._keep = False
            return True
        self._state = 1
        return self._parse()
