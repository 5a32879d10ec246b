"""A raw HTTP server for client tests: each connection goes to a handler the test writes, so
the test controls every byte of the answers; and a self-signed certificate for https."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import re
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

WAIT = 10  # seconds before a wait that never ends fails the test
Reader, Writer = asyncio.StreamReader, asyncio.StreamWriter


class Raw:
    """A server that hands each accepted connection to `handle`, counting connections and
    recording requests (head, body) as `read` takes them."""

    def __init__(self, handle: Callable[[Raw, Reader, Writer], Awaitable[None]]) -> None:
        self.handle = handle
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []
        self.changed = asyncio.Condition()
        self.port = 0
        self.server: asyncio.Server | None = None

    def url(self, path: str = "/hook", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def start(self, context: ssl.SSLContext | None = None) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=context)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: Reader, writer: Writer) -> None:
        self.connections += 1
        try:
            await self.handle(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def read(self, reader: Reader) -> bool:
        """Take one request; False when the client closed the connection instead."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        found = re.search(rb"\r\ncontent-length: (\d+)\r\n", head)
        assert found is not None, head
        body = await reader.readexactly(int(found.group(1)))
        async with self.changed:
            self.requests.append((head, body))
            self.changed.notify_all()
        return True

    async def until(self, condition: Callable[[], bool]) -> None:
        async with self.changed:
            await within(self.changed.wait_for(condition))


async def within(awaitable: Awaitable[Any]) -> Any:
    """`awaitable`, failing the test rather than hanging it when it never comes."""
    return await asyncio.wait_for(awaitable, WAIT)


def answering(*answers: bytes) -> Callable[[Raw, Reader, Writer], Awaitable[None]]:
    """Each connection answers its requests with `answers` in turn (the last one repeated)."""

    async def handle(raw: Raw, reader: Reader, writer: Writer) -> None:
        index = 0
        while await raw.read(reader):
            writer.write(answers[min(index, len(answers) - 1)])
            await writer.drain()
            index += 1

    return handle


def self_signed(folder: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem", pem
