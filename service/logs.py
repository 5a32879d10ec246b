"""Logging set-up: JSON or text lines, and one redaction filter in front of every output.

Secrets must never reach a log line at any level. Our own code logs none; the filter is the
backstop for third-party messages and exception texts (garth, requests, urllib3 and
oauthlib put URLs with tickets, headers and bodies into theirs), and the chattiest of those
libraries are held at WARNING even when the service runs at DEBUG.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any

# Who a log line is about: set by the request middleware and by sync jobs.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
user_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)
job_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("job_id", default=None)

REDACTED = "[REDACTED]"
# apscheduler logs two INFO lines per run of every job (each scheduler tick): the scheduler
# logs its ticks itself, at DEBUG
NOISY_LIBRARIES = ("urllib3", "requests_oauthlib", "oauthlib", "requests", "garth", "asyncio",
                   "aiosqlite", "tortoise", "asyncpg", "aerich", "apscheduler")

_PATTERNS = [
    re.compile(r"(?i)\b(bearer|oauth)\s+[^\s,;\"']+(?:[^\n\"]*)"),
    re.compile(r"(?i)\b(ticket|oauth_token|oauth_token_secret|oauth_signature|mfa_token|"
               r"access_token|refresh_token|password|mfa_code|mfaVerificationCode|"
               r"serviceTicketId|api_key|consumer_secret|jti)"
               r"([\"']?\s*[:=]\s*[\"']?)([^\s&,;\"'}]+)"),
    re.compile(r"\bST-[A-Za-z0-9._-]+"),
    re.compile(r"\bgs1\.[0-9a-f]+\.[A-Za-z0-9_=-]+"),
]


Field = str | int | float | None


def fields(values: dict[str, Field]) -> str:
    """`key=value` pairs for a one-line event; a value with spaces, quotes or `=` is quoted.

    Pass the same dict as `extra={"fields": values}`: JSON output then carries each pair as
    its own key too.
    """
    return " ".join(f"{key}={_field(value)}" for key, value in values.items())


def _field(value: Field) -> str:
    text = "-" if value is None else str(value)
    if not text or any(char.isspace() or char in "\"'=" for char in text):
        return json.dumps(text)
    return text


def redact(text: str) -> str:
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _PATTERNS[2].sub(REDACTED, text)
    return _PATTERNS[3].sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Renders the record (message and exception) once, redacted, so nothing raw remains;
    also stamps it with the request, user and job it belongs to."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.user_id = user_id.get()
        record.job_id = job_id.get()
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.exc_info = None if record.exc_text else record.exc_info
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "user_id", "job_id"):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        for key, value in (getattr(record, "fields", None) or {}).items():
            entry.setdefault(key, redact(value) if isinstance(value, str) else value)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [f"{name}={getattr(record, name)}" for name in ("request_id", "user_id", "job_id")
                if getattr(record, name, None) is not None]
        return f"{line} [{' '.join(tags)}]" if tags else line


def configure(level: str, fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """Replace the root handlers with one redacting handler; returns it (tests read it)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_garmin_sync", False):
            root.removeHandler(existing)
    handler._garmin_sync = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("aiohttp.access").setLevel(level)
    return handler
