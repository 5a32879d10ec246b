"""Secrets never reach the database in plaintext, nor a log line at any level."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import logs
from tests.support.app import PG_URL, Api, Sandbox, raw_rows

PASSWORD = "pw-Zebra-Quartz-9317"


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The service's real log handler (with its redaction filter) at DEBUG, into a buffer."""
    stream = io.StringIO()
    handler = logs.configure("DEBUG", "text", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


async def _exercise(api: Api, sandbox: Sandbox) -> None:
    """Login, MFA (wrong then right), refreshes, an expiry: every path that handles a secret."""
    sandbox.add("plain@example.com", password=PASSWORD, oauth2_lifetime_seconds=0)
    sandbox.add("mfa@example.com", password=PASSWORD, mfa_code="246810")
    assert (await api.login("user-1", "plain@example.com", PASSWORD)).status == 200
    assert (await api.login("user-2", "mfa@example.com", PASSWORD)).status == 200
    assert (await api.mfa("user-2", "135799")).status == 422
    assert (await api.login("user-3", "plain@example.com", "bad-" + PASSWORD)).status == 422
    for _ in range(2):
        assert (await api.status("user-1", refresh=True)).status == 200
    assert (await api.status("user-2")).status == 200


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


async def test_rows_hold_no_token_or_password(api: Api, sandbox: Sandbox) -> None:
    await _exercise(api, sandbox)
    dump = repr(await raw_rows(api))
    assert sandbox.state.issued_secrets()
    assert _leaks(dump, [*sandbox.state.issued_secrets(), PASSWORD, "246810"]) == []
    assert "session_data" in dump and "gs1." in dump


@pytest.mark.skipif(bool(PG_URL), reason="the SQLite file check needs the SQLite backend")
async def test_sqlite_file_holds_no_token_or_password(
    api: Api, sandbox: Sandbox, database_url: str
) -> None:
    await _exercise(api, sandbox)
    await api.client.close()
    path = Path(database_url.removeprefix("sqlite://"))
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    secrets = [*sandbox.state.issued_secrets(), PASSWORD]
    assert [s for s in secrets if s.encode() in raw] == []


async def test_debug_logs_hold_no_token_or_password(
    api: Api, sandbox: Sandbox, captured_logs: io.StringIO
) -> None:
    await _exercise(api, sandbox)
    text = captured_logs.getvalue()
    assert "user-1" in text  # the capture really saw the service's log lines
    assert _leaks(text, [*sandbox.state.issued_secrets(), PASSWORD, "246810", "135799"]) == []


def test_redaction_filter_masks_secrets_in_third_party_messages() -> None:
    stream = io.StringIO()
    handler = logs.configure("DEBUG", "json", stream=stream)
    try:
        noisy = logging.getLogger("somelib")
        noisy.warning("GET /oauth/preauthorized?ticket=ST-abc123&x=1 "
                      "Authorization: Bearer sbx-at-1")
        noisy.warning('body {"password": "hunter2", "access_token": "tok-9"}')
        try:
            raise ValueError("refresh_token=rt-77 rejected")
        except ValueError:
            noisy.exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    for secret in ("ST-abc123", "sbx-at-1", "hunter2", "tok-9", "rt-77"):
        assert secret not in text
    assert text.count("[REDACTED]") >= 5
