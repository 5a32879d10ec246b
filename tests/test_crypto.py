"""Encryption at rest: AES-GCM bound to user and purpose, key rings, the embedded key file."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from service.config import ConfigError
from service.crypto import (
    KEY_FILE_NAME,
    Cipher,
    DecryptionError,
    build_cipher,
    generate_key,
)

SECRET = '{"oauth2_token": {"access_token": "sbx-at-recognisable-plaintext"}}'
K1 = generate_key()
K2 = generate_key()


def seal(cipher: Cipher, text: str = SECRET, user: str = "user-a",
         purpose: str = "session_data") -> str:
    return cipher.encrypt(text, user_id=user, purpose=purpose)


def test_round_trip() -> None:
    cipher = Cipher([K1])
    token = seal(cipher)
    assert cipher.decrypt(token, user_id="user-a", purpose="session_data") == SECRET


def test_round_trip_of_unicode_and_empty_text() -> None:
    cipher = Cipher([K1])
    for text in ("", "päss wörd ✓ 日本"):
        token = seal(cipher, text)
        assert cipher.decrypt(token, user_id="user-a", purpose="session_data") == text


def test_same_plaintext_encrypts_differently_each_time() -> None:
    cipher = Cipher([K1])
    assert seal(cipher) != seal(cipher)


def test_stored_form_never_contains_the_plaintext() -> None:
    cipher = Cipher([K1])
    token = seal(cipher)
    assert token.startswith(f"gs1.{cipher.current_key_id}.")
    assert "sbx-at-recognisable-plaintext" not in token
    assert "recognisable" not in token
    body = base64.urlsafe_b64decode(token.split(".")[2])
    assert b"recognisable" not in body


def test_ciphertext_is_bound_to_the_user() -> None:
    cipher = Cipher([K1])
    token = seal(cipher, user="user-a")
    with pytest.raises(DecryptionError):
        cipher.decrypt(token, user_id="user-b", purpose="session_data")


def test_ciphertext_is_bound_to_the_purpose() -> None:
    cipher = Cipher([K1])
    token = seal(cipher, purpose="mfa_state")
    with pytest.raises(DecryptionError):
        cipher.decrypt(token, user_id="user-a", purpose="session_data")


@pytest.mark.parametrize("position", [0, 5, 20, -3, -1])
def test_tampered_ciphertext_raises(position: int) -> None:
    cipher = Cipher([K1])
    token = seal(cipher)
    prefix, key_id, body = token.split(".")
    blob = bytearray(base64.urlsafe_b64decode(body))
    blob[position] ^= 0x01
    tampered = f"{prefix}.{key_id}.{base64.urlsafe_b64encode(bytes(blob)).decode()}"
    with pytest.raises(DecryptionError):
        cipher.decrypt(tampered, user_id="user-a", purpose="session_data")


@pytest.mark.parametrize(
    "token",
    ["", "plain text session", "gs1.abc", "gs2.abc.def", "gs1.abc.!!!not-base64!!!",
     "gs1.abc." + base64.urlsafe_b64encode(b"short").decode(), "gs1.a.b.c"],
    ids=["empty", "plaintext", "two-parts", "wrong-prefix", "bad-base64", "too-short",
         "four-parts"],
)
def test_malformed_stored_value_raises_decryption_error(token: str) -> None:
    with pytest.raises(DecryptionError):
        Cipher([K1]).decrypt(token, user_id="user-a", purpose="session_data")


def test_unknown_key_id_raises() -> None:
    token = seal(Cipher([K1]))
    with pytest.raises(DecryptionError) as info:
        Cipher([K2]).decrypt(token, user_id="user-a", purpose="session_data")
    assert "not configured" in str(info.value)


def test_rewritten_key_id_does_not_smuggle_a_value_past_the_other_key() -> None:
    k1_token = seal(Cipher([K1]))
    ring = Cipher([K2, K1])
    _, _, body = k1_token.split(".")
    forged = f"gs1.{ring.current_key_id}.{body}"
    with pytest.raises(DecryptionError):
        ring.decrypt(forged, user_id="user-a", purpose="session_data")


def test_rotation_ring_decrypts_old_key_and_encrypts_with_the_first() -> None:
    old = Cipher([K1])
    ring = Cipher([K2, K1])
    k1_token = seal(old)
    assert ring.decrypt(k1_token, user_id="user-a", purpose="session_data") == SECRET
    assert not ring.is_current(k1_token)
    assert ring.key_id_of(k1_token) == old.current_key_id

    k2_token = seal(ring)
    assert ring.is_current(k2_token)
    assert ring.key_id_of(k2_token) == Cipher([K2]).current_key_id
    assert Cipher([K2]).decrypt(k2_token, user_id="user-a", purpose="session_data") == SECRET
    with pytest.raises(DecryptionError):
        old.decrypt(k2_token, user_id="user-a", purpose="session_data")


def test_key_ids_differ_per_key_and_are_stable() -> None:
    assert Cipher([K1]).current_key_id == Cipher([K1, K2]).current_key_id
    assert Cipher([K1]).current_key_id != Cipher([K2]).current_key_id
    assert K1 not in seal(Cipher([K1]))


def test_generated_keys_are_distinct_32_byte_keys() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    assert all(len(base64.urlsafe_b64decode(key)) == 32 for key in keys)


@pytest.mark.parametrize(
    "text",
    ["", "not base64 at all!", base64.urlsafe_b64encode(b"x" * 16).decode(),
     base64.urlsafe_b64encode(b"x" * 33).decode(), "ключ"],
    ids=["empty", "not-base64", "16-bytes", "33-bytes", "non-ascii"],
)
def test_bad_key_text_names_security_encryption_keys(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        Cipher([K1, text])
    assert "security.encryption_keys" in str(info.value)
    assert "[1]" in str(info.value)
    if text:
        assert text not in str(info.value)


def test_empty_key_list_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Cipher([])


def test_build_cipher_on_sqlite_creates_a_private_key_file_and_reuses_it(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "nested" / "data"
    first = build_cipher([], is_sqlite=True, data_dir=str(data_dir))
    key_file = data_dir / KEY_FILE_NAME
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_text = key_file.read_text(encoding="ascii").strip()
    assert first.current_key_id == Cipher([key_text]).current_key_id

    token = seal(first)
    second = build_cipher([], is_sqlite=True, data_dir=str(data_dir))
    assert key_file.read_text(encoding="ascii").strip() == key_text
    assert second.current_key_id == first.current_key_id
    assert second.decrypt(token, user_id="user-a", purpose="session_data") == SECRET


def test_build_cipher_with_configured_keys_writes_no_key_file(tmp_path: Path) -> None:
    cipher = build_cipher([K2, K1], is_sqlite=True, data_dir=str(tmp_path))
    assert cipher.current_key_id == Cipher([K2]).current_key_id
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_build_cipher_on_postgres_without_keys_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        build_cipher([], is_sqlite=False, data_dir=str(tmp_path))
    assert "security.encryption_keys" in str(info.value)
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_corrupt_key_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text("garbage\n", encoding="ascii")
    with pytest.raises(ConfigError) as info:
        build_cipher([], is_sqlite=True, data_dir=str(tmp_path))
    assert "security.encryption_keys" in str(info.value)
