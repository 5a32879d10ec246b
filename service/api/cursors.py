"""Paging cursors: where the next page starts, signed so only cursors this API issued are
taken back.

A cursor is ``base64url(JSON [values...]) "." base64url(HMAC-SHA256)[:22]``. The MAC covers
the listing's scope besides the values, so a cursor is refused on another listing. It is a
position, not a grant: every listing filters by the caller's user id, so another user's
cursor only pages through the caller's own rows. Its key is derived from the configured
encryption keys (`Cipher.derived_keys`): every replica derives the same key, so a cursor
issued by one is good on another, and rotating the keys keeps older cursors valid while the
old key is still configured.

Values are ints, strings and aware datetimes. Every int is bounded to what a BIGINT column
holds even though the MAC already vouches for it: no cursor may reach the database as a
number it cannot bind.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from service.errors import BadCursor

MAX_CURSOR_LENGTH = 200
MAX_INT = 2**63 - 1
MAC_CHARS = 22  # 128 bits of the tag in base64url
PURPOSE = "paging cursors"
Value = int | str | datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Cursors:
    """Issues and opens cursors; `keys[0]` signs, any of `keys` verifies."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("at least one cursor key is required")
        self._keys = tuple(keys)

    def _mac(self, key: bytes, scope: str, payload: str) -> str:
        message = "\n".join((scope, payload)).encode()
        return _b64(hmac.digest(key, message, "sha256"))[:MAC_CHARS]

    def issue(self, scope: str, *values: Value) -> str:
        plain: list[int | str] = []
        for value in values:
            if isinstance(value, datetime):
                plain.append(value.isoformat())
            elif isinstance(value, int) and not 0 <= value <= MAX_INT:
                raise ValueError("cursor integers are 0 to 2**63-1")
            else:
                plain.append(value)
        payload = _b64(json.dumps(plain, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(self._keys[0], scope, payload)}"

    def open(self, scope: str, token: str, shape: Sequence[type[Value]]) -> tuple[Any, ...]:
        """The values of a cursor issued for `scope`, typed as `shape`, or `BadCursor` for
        anything else."""
        if not 1 <= len(token) <= MAX_CURSOR_LENGTH or not token.isascii():
            raise BadCursor()
        payload, _, mac = token.partition(".")
        if not any(hmac.compare_digest(mac, self._mac(key, scope, payload))
                   for key in self._keys):
            raise BadCursor()
        try:
            values = json.loads(_unb64(payload))
        except (binascii.Error, ValueError):
            raise BadCursor() from None
        if not isinstance(values, list) or len(values) != len(shape):
            raise BadCursor()
        return tuple(_typed(value, kind) for value, kind in zip(values, shape, strict=True))


def _typed(value: object, kind: type[Value]) -> Value:
    if kind is int and type(value) is int and 0 <= value <= MAX_INT:
        return value
    if kind is str and isinstance(value, str):
        return value
    if kind is datetime and isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise BadCursor() from None
        if moment.tzinfo is not None:
            return moment
    raise BadCursor()


CURSORS = web.AppKey("cursors", Cursors)


def query_cursor(request: web.Request, scope: str,
                 shape: Sequence[type[Value]]) -> tuple[Any, ...] | None:
    """The `cursor` query parameter opened (None when absent; an empty one is no cursor this
    API issued)."""
    token = request.query.get("cursor")
    if token is None:
        return None
    return request.app[CURSORS].open(scope, token, shape)
