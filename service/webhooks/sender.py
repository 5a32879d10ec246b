"""The dispatcher's HTTP client: POSTs over kept-alive HTTP/1.1 connections, one pool per origin.

Built on `http1.Connection`, an asyncio protocol that parses answers as they arrive, with
the request line and `Host` of each URL encoded once: a delivery costs a write, a read and a
parse, not a client object per request. What it does and does not do:

- Per origin (scheme, host, port) at most `max_connections` connections, open or opening;
  further requests wait for one. Idle connections are closed after `idle_seconds` (when
  next looked at) and by `close`.

- Every new connection resolves the host anew (no DNS cache) and, unless `allow_private`,
  is refused (`TargetRefused`) when any address the name resolves to is not public
  (`service.webhooks.targets.resolve`); it connects to the checked addresses themselves, in
  order, so a name that resolves to a public address at configuration time and to 127.0.0.1
  later (DNS rebinding) is refused at the moment it matters.
- No proxy, no redirect (a 3xx is just a status), no decompression: the body of an answer is
  read and thrown away. An answer is framed by `Content-Length` or chunked encoding; one
  framed by the end of the connection gives its status at once and the connection is closed.
- A connection is reused only after an HTTP/1.1 answer without `Connection: close` whose
  body was read whole (bodies over `http1.MAX_BODY` close it instead). A request on a reused
  connection that the receiver closed while idle (the connection ends before any byte of an
  answer) is sent once more on a new connection; receivers deduplicate by `webhook-id`.
- Timeouts: `connect_timeout` bounds resolving and connecting (TLS included), `timeout` the
  whole attempt, waiting for a free connection included. A connection whose request timed
  out, failed or was cancelled is closed, never reused.
- Errors never carry the URL (its path may hold a secret).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections import deque
from functools import partial
from urllib.parse import quote, unquote, urlsplit

from service.webhooks.http1 import Connection, ConnectionFailed, encode_headers
from service.webhooks.targets import TargetRefused, check_target, resolve

__all__ = ["ConnectionFailed", "Sender", "TargetRefused", "encode_headers"]

MAX_TARGETS = 256  # URLs whose encoded request line is kept
_SAFE_PATH = "/%:@!$&'()*+,;=-._~?"  # what stays as written in a request target


class _Origin:
    """The pool of one (scheme, host, port): idle connections (oldest first), how many are
    open or opening, and the requests waiting for one."""

    __slots__ = ("host", "idle", "open", "port", "server_hostname", "ssl", "waiters")

    def __init__(self, host: str, port: int, context: ssl.SSLContext | None) -> None:
        self.host = host
        self.port = port
        self.ssl = context
        self.server_hostname = host if context is not None else None
        self.idle: deque[Connection] = deque()
        self.open = 0
        self.waiters: deque[asyncio.Future[None]] = deque()


class Sender:
    """POSTs to webhook endpoints over kept-alive HTTP/1.1 connections."""

    def __init__(self, *, allow_private: bool, connect_timeout: float, timeout: float,
                 max_connections: int, idle_seconds: float = 15.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._allow_private = allow_private
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._max = max_connections
        self._idle_seconds = idle_seconds
        self._ssl = ssl_context
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._targets: dict[str, tuple[_Origin, bytes]] = {}  # url: (pool, request line+Host)
        self._connections: set[Connection] = set()
        self._closed = False
        self._deadlines: dict[asyncio.Future[int], float] = {}  # exchanges in flight
        self._watchdog: asyncio.TimerHandle | None = None

    async def post(self, url: str, headers: bytes, body: bytes) -> int:
        """POST `body` with `headers` (a block of `name: value\\r\\n` lines, see
        `encode_headers`); the answer's status. Raises `TargetRefused`, `TimeoutError` or
        `ConnectionFailed`."""
        # `check_target` depends on the URL alone: a URL it passed is remembered with its
        # encoded request line
        target = self._targets.get(url) or self._target(url)
        origin = target[0]
        request = b"".join((target[1], headers, b"content-length: %d\r\n\r\n" % len(body), body))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        connection = None if origin.waiters else self._kept(origin, deadline - self._timeout)
        reused = connection is not None
        try:
            if connection is None:
                async with asyncio.timeout_at(deadline):
                    connection = await self._checkout(origin)
                    reused = connection is not None
                    if connection is None:
                        connection = await self._connect(origin)
            try:
                status = await self._exchange(connection, request, deadline)
            except ConnectionFailed:
                if not reused or connection.received:
                    raise
                connection.close()  # closed by the receiver while idle: once more, anew
                connection = None
                async with asyncio.timeout_at(deadline):
                    connection = await self._connect(origin)
                status = await self._exchange(connection, request, deadline)
        except BaseException:
            if connection is not None:
                connection.close()
            self._checkin(origin, None)
            raise
        self._checkin(origin, connection if connection.reusable else None)
        return status

    async def close(self) -> None:
        """Close every connection; later posts fail."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        connections = list(self._connections)
        for connection in connections:
            connection.close()
        await asyncio.gather(*(c.lost for c in connections))
        self._origins.clear()
        self._targets.clear()

    def _target(self, url: str) -> tuple[_Origin, bytes]:
        if self._closed:
            raise ConnectionFailed("the sender is closed")
        check_target(url, self._allow_private)
        try:
            parts = urlsplit(url)
            https = parts.scheme == "https"
            port = parts.port or (443 if https else 80)
            host = (parts.hostname or "").encode("idna").decode("ascii")
        except (ValueError, UnicodeError):
            raise ConnectionFailed("the endpoint URL is not valid") from None
        key = (parts.scheme, host, port)
        origin = self._origins.get(key)
        if origin is None:
            context = None
            if https:
                context = self._ssl = self._ssl or ssl.create_default_context()
            origin = self._origins[key] = _Origin(host, port, context)
        path = quote(parts.path or "/", safe=_SAFE_PATH)
        if parts.query:
            path += "?" + quote(parts.query, safe=_SAFE_PATH)
        authority = f"[{host}]" if ":" in host else host
        if port != (443 if https else 80):
            authority += f":{port}"
        line = f"POST {path} HTTP/1.1\r\nhost: {authority}\r\n"
        if parts.username is not None:  # credentials in the URL: basic authentication
            user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            line += f"authorization: Basic {base64.b64encode(user.encode()).decode()}\r\n"
        if len(self._targets) >= MAX_TARGETS:
            self._targets.clear()
        target = self._targets[url] = (origin, line.encode("ascii"))
        return target

    def _kept(self, origin: _Origin, now: float) -> Connection | None:
        """An idle connection to reuse, if one is open and recent enough."""
        idle = origin.idle
        expired = now - self._idle_seconds
        while idle and idle[0].idle_since < expired:
            idle.popleft().close()
            origin.open -= 1
        while idle:
            connection = idle.pop()
            if connection.alive:
                return connection
            origin.open -= 1
        return None

    async def _checkout(self, origin: _Origin) -> Connection | None:
        """An idle connection, or None with a slot taken for a new one."""
        loop = asyncio.get_running_loop()
        while True:
            connection = self._kept(origin, loop.time())
            if connection is not None:
                return connection
            if origin.open < self._max:
                origin.open += 1
                return None
            waiter = loop.create_future()
            origin.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake(origin)  # woken, then cancelled: pass the turn on
                raise

    async def _exchange(self, connection: Connection, request: bytes, deadline: float) -> int:
        """Send `request` and wait for the answer's status until `deadline`. One timer
        (`_expire`) watches every exchange in flight, instead of one timer each."""
        waiter = connection.exchange(request)
        self._deadlines[waiter] = deadline
        if self._watchdog is None or deadline < self._watchdog.when():
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog = asyncio.get_running_loop().call_at(deadline, self._expire)
        try:
            return await waiter
        finally:
            del self._deadlines[waiter]
            connection.waiter = None

    def _expire(self) -> None:
        """Fail the exchanges past their deadline; watch again for the nearest other."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        nearest = None
        for waiter, deadline in self._deadlines.items():
            if deadline <= now:
                if not waiter.done():
                    waiter.set_exception(TimeoutError())
            elif nearest is None or deadline < nearest:
                nearest = deadline
        self._watchdog = None if nearest is None else loop.call_at(nearest, self._expire)

    def _checkin(self, origin: _Origin, connection: Connection | None) -> None:
        """Give a slot back: with the connection to keep, or None (closed)."""
        if connection is None or self._closed:
            if connection is not None:
                connection.close()
            origin.open -= 1
        else:
            connection.idle_since = connection.lost.get_loop().time()
            origin.idle.append(connection)
        self._wake(origin)

    def _forget(self, connection: Connection, _: object) -> None:
        self._connections.discard(connection)

    @staticmethod
    def _wake(origin: _Origin) -> None:
        waiters = origin.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _connect(self, origin: _Origin) -> Connection:
        if self._closed:
            raise ConnectionFailed("the sender is closed")
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            try:
                addresses = await resolve(origin.host, origin.port, self._allow_private)
            except (socket.gaierror, UnicodeError):
                raise ConnectionFailed("cannot resolve the endpoint's host") from None
            failure: OSError | None = None
            for family, address in addresses:
                sock = socket.socket(family, socket.SOCK_STREAM)
                try:
                    sock.setblocking(False)
                    await loop.sock_connect(sock, address)
                except OSError as exc:
                    sock.close()
                    failure = exc
                    continue
                except BaseException:
                    sock.close()
                    raise
                try:
                    _, connection = await loop.create_connection(
                        Connection, sock=sock, ssl=origin.ssl,
                        server_hostname=origin.server_hostname)
                except ssl.SSLError as exc:
                    raise ConnectionFailed(f"TLS failed ({type(exc).__name__})") from None
                except OSError as exc:
                    raise ConnectionFailed(f"cannot connect ({exc.strerror or exc})") from None
                self._connections.add(connection)
                connection.lost.add_done_callback(partial(self._forget, connection))
                return connection
        reason = failure.strerror if failure is not None else "no address"
        raise ConnectionFailed(f"cannot connect ({reason})")
