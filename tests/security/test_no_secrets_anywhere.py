"""No secret in any response, log line, table row or database file, after a broad scenario.

One scenario through the real app and the sandbox, once per engine (garth and DI), touches
every path that handles a secret: logins with and without MFA, wrong MFA codes, refreshes on
every call (an access token lifetime of 0), both kinds of sync, Garmin rate limits on a login
and on a sync, a wrong password, expiries by revoked sessions (found by a status check and
by a sync), and disconnects. Meanwhile it captures:

(a) every response the test client receives, status line, headers and body (the client's
    request method is wrapped; the requests the test sends, with the API key, are not);
(b) the service's log output at DEBUG, through the real handler and its redaction filter;
(c) the raw rows of all six tables, at checkpoints during the scenario and at its end;
(d) on SQLite, the bytes of every file in the database's folder (database, WAL, journal).

Then every capture is scanned for every secret: all that the sandbox issued (tickets, OAuth1
tokens and secrets, MFA tokens, access and refresh tokens, DI JWTs and refresh tokens), the
passwords, the MFA codes, the API key, the encryption key and the OAuth consumer secret. A
token is also looked for without its sandbox prefix, and inside base64 runs (a session
stored or logged base64-encoded but not encrypted would be a leak too). The Garmin
usernames are looked for too, everywhere but in the sandbox's own log lines (the throttled
account's cooldown row names it by a keyed hash). A control at the end
logs a fake token through the same handler and proves the same scan finds it.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tortoise.models import Model

import service.models
from service import db, logs
from service.config import Config
from service.keys import DB_CONTEXT
from service.sandbox import SANDBOX_CONSUMER_SECRET, Fault
from service.sandbox.state import PREFIXES
from tests.support.app import (
    API_KEY,
    PG_URL,
    SHORT_LIVED,
    TABLES,
    Api,
    Sandbox,
    both_engines,
    sync_now,
    token_grants,
)
from tests.support.waiting import eventually
from tests.support.webhooks import Receiver, new_secret

PLAIN, MFA, THROTTLED = "plain@example.com", "mfa@example.com", "throttled@example.com"
KEEP = "keep@example.com"
PASSWORDS = {PLAIN: "pw-Plain-Zebra-4821", MFA: "pw-Mfa-Quartz-7730",
             THROTTLED: "pw-Throttled-Lynx-1964", KEEP: "pw-Keep-Heron-5508"}
WRONG_PASSWORD = "pw-Plain-Zebra-4822"
MFA_CODE = "7392018465"
WRONG_MFA_CODE = "5183920746"
MFA_WAITING_CODE = "2846193057"
# the prefixed credentials each engine's logins and refreshes make the sandbox issue (a DI
# access token is a JWT, remembered without a prefix)
TOKEN_KINDS = {"garth": ("ticket", "oauth1", "oauth1_secret", "mfa", "access", "refresh"),
               "di": ("ticket", "di_refresh")}
MODELS: dict[str, type[Model]] = {
    model._meta.db_table: model
    for model in vars(service.models).values()
    if isinstance(model, type) and issubclass(model, Model) and model is not Model
}


# --- the scan -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Secret:
    """One secret and the byte strings that reveal it (its forms)."""

    value: str
    forms: tuple[bytes, ...]


def secret(value: str, *extra: bytes) -> Secret:
    forms = [value.encode(), *extra]
    issued = re.fullmatch(r"(?:ST-)?sbx-[a-z0-9]+-([0-9a-f]{32})", value)
    if issued:
        forms.append(issued.group(1).encode())  # the random part, logged without its prefix
    return Secret(value, tuple(forms))


BASE64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{16,}")


def _decoded_runs(data: bytes, depth: int = 2) -> Iterable[bytes]:
    """Every base64(url) run of `data` decoded, at each of the four alignments (a run may
    be cut, e.g. by a page boundary in a database file); and runs inside those, `depth`
    levels deep (a garth session is base64 of JSON, so a stored one would be nested)."""
    for run in BASE64_RUN.findall(data):
        standard = run.replace(b"-", b"+").replace(b"_", b"/")
        for offset in range(4):
            chunk = standard[offset:]
            chunk = chunk[:len(chunk) // 4 * 4]
            if len(chunk) < 16:
                continue
            decoded = base64.b64decode(chunk)
            yield decoded
            if depth > 1:
                yield from _decoded_runs(decoded, depth - 1)


def leaks(captured: str | bytes, wanted: Iterable[Secret]) -> list[str]:
    """The secrets that `captured` reveals in any of their forms, plainly or in base64."""
    data = captured.encode() if isinstance(captured, str) else captured
    haystack = b"\0".join([data, *_decoded_runs(data)])
    return [s.value for s in wanted if any(form in haystack for form in s.forms)]


# --- the captures -------------------------------------------------------------------------


@dataclass
class Captures:
    database_url: str
    log_stream: io.StringIO = field(default_factory=io.StringIO)
    responses: list[str] = field(default_factory=list)
    row_dumps: list[str] = field(default_factory=list)
    files: list[tuple[str, bytes]] = field(default_factory=list)

    def record_responses(self, api: Api) -> None:
        """Wrap the client's request method (every get/post/delete/request goes through it):
        keep each response's status, headers and body as the test client received them."""
        original = api.client._request

        async def recording(method: str, path: Any, **kwargs: Any) -> Any:
            response = await original(method, path, **kwargs)
            body = await response.read()
            headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
            self.responses.append(f"{method} {path} -> {response.status}\n{headers}\n\n"
                                  + body.decode("utf-8", "replace"))
            return response

        api.client._request = recording  # type: ignore[method-assign]

    async def checkpoint(self, api: Api) -> dict[str, list[dict[str, Any]]]:
        """Every row of the six tables now (the app's DB context, Model.all().values()),
        and on SQLite the database files as they are now (the WAL holds recent writes)."""
        db.activate(api.app[DB_CONTEXT])
        rows = {table: [dict(row) for row in await model.all().values()]
                for table, model in MODELS.items()}
        self.row_dumps.append(repr(rows))
        self.read_files(f"checkpoint {len(self.row_dumps)}")
        return rows

    def read_files(self, when: str) -> None:
        """Every file in the SQLite database's folder (database, WAL, journal), as bytes."""
        if PG_URL:
            return
        folder = Path(self.database_url.removeprefix("sqlite://")).parent
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                self.files.append((f"{when}: {path.name}", path.read_bytes()))


@pytest.fixture
async def captures(database_url: str) -> AsyncIterator[Captures]:
    """The service's real log handler at DEBUG in JSON, into a buffer; removed afterwards."""
    captured = Captures(database_url)
    root = logging.getLogger()
    tuned = ("", *logs.NOISY_LIBRARIES, "aiohttp.access")
    levels = {name: logging.getLogger(name).level for name in tuned}
    handler = logs.configure("DEBUG", "json", stream=captured.log_stream)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# --- the scenario -------------------------------------------------------------------------


async def expect(response: Any, status: int) -> Any:
    text = await response.text()
    assert response.status == status, text
    return json.loads(text) if response.content_type.endswith("json") else text


async def scenario(api: Api, sandbox: Sandbox, captures: Captures, engine: str) -> None:
    short = SHORT_LIVED[engine]  # every use refreshes first
    sandbox.add(PLAIN, password=PASSWORDS[PLAIN], **short)
    sandbox.add(MFA, password=PASSWORDS[MFA], mfa_code=MFA_CODE, **short)
    sandbox.add(THROTTLED, password=PASSWORDS[THROTTLED])
    sandbox.add(KEEP, password=PASSWORDS[KEEP], **short)
    headers = Api.headers

    # logins: plain, MFA with a wrong code first, an MFA left waiting, a wrong password
    assert (await expect(await api.login("u-plain", PLAIN, PASSWORDS[PLAIN]), 200)
            == {"status": "SUCCESS"})
    challenge = await expect(await api.login("u-mfa", MFA, PASSWORDS[MFA]), 200)
    assert challenge["status"] == "MFA_REQUIRED"
    await captures.checkpoint(api)  # the sealed MFA challenge is in the row now
    wrong = await expect(await api.mfa("u-mfa", WRONG_MFA_CODE), 422)
    assert wrong["attempts_remaining"] >= 1
    await expect(await api.mfa("u-mfa", MFA_CODE), 200)
    await expect(await api.login("u-waiting", MFA, PASSWORDS[MFA]), 200)
    await expect(await api.mfa("u-waiting", MFA_WAITING_CODE), 422)
    await expect(await api.login("u-wrong", PLAIN, WRONG_PASSWORD), 422)
    await expect(await api.login("u-bye", PLAIN, PASSWORDS[PLAIN]), 200)
    await expect(await api.login("u-keep", KEEP, PASSWORDS[KEEP]), 200)
    await captures.checkpoint(api)

    # refreshes: a token lifetime of 0 makes every live check refresh first
    for user in ("u-plain", "u-mfa", "u-keep", "u-plain"):
        body = await expect(await api.status(user, refresh=True), 200)
        assert (body["status"], body["checked"]) == ("VALID", "live"), body
    assert token_grants(sandbox, engine, PLAIN) >= 3  # the login and two refreshes

    # both kinds of sync, then the data as callers read it
    for user in ("u-plain", "u-mfa", "u-keep"):
        jobs = await sync_now(api, user, "activities", "health")
        assert [job["status"] for job in jobs] == ["SUCCESS", "SUCCESS"], jobs
        for path in ("/api/v1/garmin/activities", "/api/v1/garmin/sync/jobs"):
            assert (await expect(await api.client.get(path, headers=headers(user)), 200)
                    )["items"]
        await expect(await api.client.get("/api/v1/garmin/health/daily", headers=headers(user),
                                          params={"from": "2000-01-01", "to": "2000-12-31"}),
                     200)
    await captures.checkpoint(api)

    # Garmin's 429: on a sync (after the refresh it made) and on a login (then a cooldown)
    sandbox.state.set_fault(PLAIN, "api", Fault(status=429, retry_after=120, times=1))
    jobs = await sync_now(api, "u-plain", "activities")
    assert [job["status"] for job in jobs] == ["RATE_LIMITED"], jobs
    # a Garmin 5xx on a sync: counted toward `sync.failing` (a row of its own)
    sandbox.state.set_fault(KEEP, "api", Fault(status=503, times=1))
    jobs = await sync_now(api, "u-keep", "health")
    assert [job["status"] for job in jobs] == ["FAILED"], jobs
    sandbox.state.set_fault(THROTTLED, "login", Fault(status=429, retry_after=30))
    limited = await api.login("u-throttled", THROTTLED, PASSWORDS[THROTTLED])
    assert (await expect(limited, 429))["type"].endswith("/garmin-rate-limited")
    cooling = await api.login("u-throttled", THROTTLED, PASSWORDS[THROTTLED])
    assert (await expect(cooling, 429))["type"].endswith("/login-cooldown")

    # a disconnect of a valid session, then expiries by revocation
    await expect(await api.delete("u-bye"), 204)
    await captures.checkpoint(api)
    sandbox.state.revoke_oauth1(MFA)
    body = await expect(await api.status("u-mfa", refresh=True), 200)
    assert body["status"] == "EXPIRED", body
    # Garmin's block on u-plain ends (syncs wait for it), then its session is revoked
    db.activate(api.app[DB_CONTEXT])
    await service.models.SyncCursor.filter(user_id="u-plain").update(backoff_until=None)
    sandbox.state.revoke_oauth1(PLAIN)
    jobs = await sync_now(api, "u-plain", "health")
    assert [job["status"] for job in jobs] == ["AUTH_EXPIRED"], jobs
    await expect(await api.client.post("/api/v1/garmin/sync", headers=headers("u-plain"),
                                       json={}), 409)
    ends = {user: (await expect(await api.status(user), 200))["status"] for user in
            ("u-plain", "u-mfa", "u-waiting", "u-wrong", "u-throttled", "u-bye", "u-keep")}
    assert ends == {"u-plain": "EXPIRED", "u-mfa": "EXPIRED", "u-waiting": "MFA_PENDING",
                    "u-wrong": "MISSING", "u-throttled": "MISSING", "u-bye": "MISSING",
                    "u-keep": "VALID"}
    await captures.checkpoint(api)
    await expect(await api.delete("u-mfa"), 204)
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"):
        await expect(await api.client.get(path), 200)


def every_secret(sandbox: Sandbox, encryption_key: str, database_url: str) -> list[Secret]:
    issued = sandbox.state.issued_secrets()
    raw_key = base64.urlsafe_b64decode(encryption_key)
    wanted = [
        *(secret(value) for value in issued),
        *(secret(value) for value in (*PASSWORDS.values(), WRONG_PASSWORD)),
        *(secret(code) for code in (MFA_CODE, WRONG_MFA_CODE, MFA_WAITING_CODE)),
        secret(API_KEY),
        secret(encryption_key, base64.b64encode(raw_key), raw_key, raw_key.hex().encode()),
        secret(SANDBOX_CONSUMER_SECRET),
    ]
    hook_key = base64.b64decode(HOOK_SECRET.removeprefix("whsec_"))
    wanted.append(secret(HOOK_SECRET, hook_key, base64.b64encode(hook_key)))
    password = urlsplit(database_url).password
    return [*wanted, secret(password)] if password else wanted


# --- the test -----------------------------------------------------------------------------

HOOK_SECRET = new_secret()


async def _deliveries_done() -> bool:
    pending = service.models.DeliveryStatus.PENDING
    return not await service.models.WebhookDelivery.filter(status=pending).exists()


engine = both_engines


async def test_no_secret_reaches_a_response_a_log_line_a_row_or_a_database_file(
    captures: Captures, sandbox: Sandbox, make_config: Callable[..., Config],
    start_api: Callable[[Config], Any], encryption_key: str, database_url: str, engine: str,
) -> None:
    # webhooks on: their signing secret is one more secret to look for
    hook_receiver = Receiver(secrets=[HOOK_SECRET])
    await hook_receiver.start()
    api = await start_api(make_config(sync={"backfill_days": 3}, webhooks={
        "enabled": True, "allow_private_targets": True, "poll_seconds": 0.05,
        "endpoints": [{"url": hook_receiver.url(), "secrets": [HOOK_SECRET]}]}))
    captures.record_responses(api)
    try:
        await scenario(api, sandbox, captures, engine)
        # every event reached the receiver (no delivery is left pending)
        db.activate(api.app[DB_CONTEXT])
        await eventually(_deliveries_done, 30, "the webhook deliveries")
        final_rows = await captures.checkpoint(api)
        await api.client.close()  # every write is in the files, the WAL checkpointed
    finally:
        # after the app (and its dispatcher's connections) closed
        await hook_receiver.stop()
    assert hook_receiver.bad == [] and len(hook_receiver.delivered()) >= 10
    captures.read_files("after shutdown")
    log_text = captures.log_stream.getvalue()
    wanted = every_secret(sandbox, encryption_key, database_url)

    # the scenario issued every kind of credential, and each capture really saw the service
    issued = sandbox.state.issued_secrets()
    assert {kind: any(value.startswith(PREFIXES[kind]) for value in issued)
            for kind in TOKEN_KINDS[engine]} == dict.fromkeys(TOKEN_KINDS[engine], True)
    assert engine != "di" or sum(value.startswith("ey") for value in issued) >= 6  # JWTs
    assert len(captures.responses) >= 40
    assert any('"MFA_REQUIRED"' in text for text in captures.responses)
    lines = [json.loads(line) for line in log_text.splitlines()]
    assert {"DEBUG", "INFO", "WARNING"} <= {line["level"] for line in lines}
    assert {"u-plain", "u-mfa"} <= {line.get("user_id") for line in lines}
    assert set(final_rows) == set(TABLES) and all(final_rows.values())
    assert PG_URL or len(captures.files) >= 7

    found: list[tuple[str, str | bytes]] = [
        *((f"response {text.split(chr(10), 1)[0]}", text) for text in captures.responses),
        *((f"log line {line[:120]}", line) for line in log_text.splitlines()),
        *((f"rows at checkpoint {index}", dump) for index, dump in
          enumerate(captures.row_dumps, 1)),
        *((f"file at {name}", data) for name, data in captures.files),
    ]
    hits = [f"{where}: {secrets_found}" for where, captured in found
            if (secrets_found := leaks(captured, wanted))]
    assert hits == []

    # nor does a Garmin username, but in the sandbox's own log lines: the throttled
    # account's cooldown row names it by a keyed hash
    usernames = [secret(username) for username in PASSWORDS]
    sandbox_lines = {line for line in log_text.splitlines()
                     if json.loads(line)["logger"].startswith("service.sandbox")}
    named = [f"{where}: {names}" for where, captured in found
             if captured not in sandbox_lines and (names := leaks(captured, usernames))]
    assert named == [], "\n".join(named)
    assert any(leaks(line, usernames) for line in sandbox_lines)  # the scan finds them
    cooldowns = final_rows["garmin_account_cooldown"]
    assert [re.fullmatch(r"[0-9a-f]{64}", row["account"]) is not None
            for row in cooldowns] == [True]

    # sessions and MFA challenges were there, sealed, up to the end (the scan had them)
    for sealed in ("'session_data': 'gs1.", "'mfa_state': 'gs1."):
        assert sealed in captures.row_dumps[-1], sealed
    assert PG_URL or any(b"gs1." in data for name, data in captures.files
                         if name.startswith("after shutdown"))

    # control: a token logged through the same handler is found by the same scan, plain,
    # without its prefix, and base64-encoded inside a JSON blob
    fakes = [f"{PREFIXES['access']}{secrets.token_hex(16)}" for _ in range(3)]
    careless = logging.getLogger("service.sessions.service")
    careless.debug("refreshed session for %s: %s", "u-plain", fakes[0])
    careless.info("token core %s", fakes[1].removeprefix(PREFIXES["access"]))
    careless.warning("dump %s", base64.b64encode(json.dumps({"t": fakes[2]}).encode()).decode())
    control = captures.log_stream.getvalue()[len(log_text):]
    assert [leaks(control, [secret(fake)]) for fake in fakes] == [[fake] for fake in fakes]
