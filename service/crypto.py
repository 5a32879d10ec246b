"""Authenticated encryption of Garmin sessions and MFA state at rest.

AES-256-GCM with the owning user id (and the field's purpose) as associated data: a
ciphertext copied into another user's row, or from `mfa_state` into `session_data`, fails
authentication and is treated as "re-login required", never as that user's session.

Stored form: ``gs1.<key id>.<base64url(nonce || ciphertext)>``. The key id (a hash prefix of
the key) lets decryption pick the right key at once and lets `rotate-keys` tell which rows
are already on the current key without decrypting them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.config import ConfigError, StartupError

log = logging.getLogger(__name__)

PREFIX = "gs1"
NONCE_BYTES = 12
KEY_FILE_NAME = "encryption.key"


class DecryptionError(Exception):
    """A stored value cannot be opened with any configured key for this user and purpose."""


def generate_key() -> str:
    """A new random 256-bit key in the text form the configuration takes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _decode_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("not valid base64") from None
    if len(raw) != 32:
        raise ValueError("must decode to 32 bytes (generate one with `garmin-sync generate-key`)")
    return raw


def _key_id(raw: bytes) -> str:
    return hashlib.sha256(b"garmin-sync key id" + raw).hexdigest()[:10]


@dataclass(frozen=True)
class _Key:
    key_id: str
    aead: AESGCM
    raw: bytes = field(repr=False)


class Cipher:
    """A key ring: the first key encrypts, every key decrypts (so keys can be rotated)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is required")
        ring: list[_Key] = []
        for index, text in enumerate(keys):
            try:
                raw = _decode_key(text)
            except ValueError as exc:
                raise ConfigError(f"security.encryption_keys[{index}]", str(exc)) from None
            ring.append(_Key(_key_id(raw), AESGCM(raw), raw))
        self._ring = ring
        self._by_id = {key.key_id: key for key in ring}

    @property
    def current_key_id(self) -> str:
        return self._ring[0].key_id

    def derived_keys(self, purpose: str) -> list[bytes]:
        """One key per configured key, for `purpose` only (current first): every replica
        derives the same ones, and none of them opens a sealed session."""
        label = f"garmin-sync derived key|{purpose}".encode()
        return [hmac.digest(key.raw, label, "sha256") for key in self._ring]

    @staticmethod
    def _aad(user_id: str, purpose: str) -> bytes:
        return f"garmin-sync|{purpose}|{user_id}".encode()

    def encrypt(self, plaintext: str, *, user_id: str, purpose: str) -> str:
        key = self._ring[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = key.aead.encrypt(nonce, plaintext.encode(), self._aad(user_id, purpose))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{PREFIX}.{key.key_id}.{body}"

    def decrypt(self, token: str, *, user_id: str, purpose: str) -> str:
        key_id, blob = self._split(token)
        key = self._by_id.get(key_id)
        if key is None:
            raise DecryptionError("encrypted with a key that is not configured")
        try:
            plain = key.aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:],
                                     self._aad(user_id, purpose))
        except InvalidTag:
            raise DecryptionError("authentication failed (wrong user, field or key)") from None
        return plain.decode()

    def key_id_of(self, token: str) -> str:
        """The id of the key a stored value was sealed with (for rotation bookkeeping)."""
        return self._split(token)[0]

    def is_current(self, token: str) -> bool:
        return self.key_id_of(token) == self.current_key_id

    @staticmethod
    def _split(token: str) -> tuple[str, bytes]:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise DecryptionError("not an encrypted value")
        try:
            blob = base64.urlsafe_b64decode(parts[2].encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise DecryptionError("corrupt encrypted value") from None
        if len(blob) <= NONCE_BYTES:
            raise DecryptionError("corrupt encrypted value")
        return parts[1], blob


def load_or_create_key_file(data_dir: str) -> str:
    """The embedded default's key: read it, or create it once with mode 0600 (its folder
    0700).

    Only the path is logged, never the key. Creation uses O_EXCL so two processes starting
    together cannot each write a different key.
    """
    path = Path(data_dir) / KEY_FILE_NAME
    if not path.exists():
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StartupError(
                "security.data_dir",
                f"cannot create the encryption key file {path}: {exc.strerror or exc}; check "
                "that the folder can be written by this user, or set security.encryption_keys",
            ) from None
        else:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(generate_key() + "\n")
            log.warning(
                "generated a new encryption key at %s: sessions sealed with any other key "
                "cannot be read with it, so if this database already holds sessions, restore "
                "their key file or set security.encryption_keys; back this file up, apart "
                "from the database's backups", path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
        raise ConfigError("security.encryption_keys", problem) from None
    if path.stat().st_mode & 0o077:
        log.warning("encryption key file %s is readable by other users; chmod 600 it", path)
    try:
        _decode_key(text)
    except ValueError as exc:
        raise ConfigError(
            "security.data_dir",
            f"the key file {path} does not hold a key ({exc}); restore it from a backup or "
            "set security.encryption_keys (GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS)",
        ) from None
    return text


def build_cipher(keys: Sequence[str], *, is_sqlite: bool, data_dir: str) -> Cipher:
    """Keys from configuration; on the embedded default a generated key file stands in."""
    if keys:
        return Cipher(keys)
    if not is_sqlite:
        raise ConfigError(
            "security.encryption_keys",
            "required with PostgreSQL (generate one with `garmin-sync generate-key`)",
        )
    return Cipher([load_or_create_key_file(data_dir)])
