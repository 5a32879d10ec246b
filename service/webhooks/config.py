"""Webhook settings: the `webhooks` configuration section with its endpoints checked.

Every key is declared once, in `service.config_webhooks.WebhooksConfig`;
`GARMIN_SYNC_WEBHOOKS_ENDPOINTS`, when set, replaces `endpoints` with the same list written
as JSON. Secrets stay out of every `repr` and every error, so a logged config shows none.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from service.config import ConfigError
from service.config import WebhooksConfig as WebhooksSection
from service.settings import build_section, env_name_of
from service.webhooks.events import EVENT_TYPES

SECTION = "webhooks"
ENDPOINTS_ENV = env_name_of(f"{SECTION}.endpoints")
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
# the Standard Webhooks spec: a symmetric secret of 24 to 64 random bytes
SECRET_BYTES = (24, 64)
ENDPOINT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_URL_LENGTH = 2048


@dataclass(frozen=True)
class Endpoint:
    """One receiver. `id` names it in the outbox (default: derived from the URL, so the URL,
    which may carry a token of the receiver's, is never stored); `events` None takes all."""

    id: str
    url: str = field(repr=False)
    secrets: tuple[str, ...] = field(repr=False)
    events: frozenset[str] | None = None

    def wants(self, event_type: str) -> bool:
        return self.events is None or event_type in self.events


@dataclass(frozen=True)
class WebhooksConfig(WebhooksSection):
    """The `webhooks` section (every key declared once, in `service.config_webhooks`) with its
    endpoints parsed and checked; built by `from_section`, or `from_mapping` for a plain
    mapping."""

    # the section holds the raw list of mappings; here each one is an `Endpoint`
    endpoints: tuple[Endpoint, ...] = ()  # type: ignore[assignment]

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return next((e for e in self.endpoints if e.id == endpoint_id), None)

    @classmethod
    def from_section(cls, section: WebhooksSection) -> WebhooksConfig:
        """Check the endpoints and the rules between keys; raises `ConfigError`."""
        values = {item.name: getattr(section, item.name) for item in fields(WebhooksSection)}
        values["endpoints"] = _endpoints(list(section.endpoints))
        config = cls(**values)
        config._check()
        return config

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None,
                     env: Mapping[str, str] | None = None) -> WebhooksConfig:
        """Parse and check a `webhooks` section given as a mapping (file values must have
        their YAML types); `env` overrides as the configuration loader does."""
        values = dict(values or {})
        defaults = WebhooksSection()
        for key, value in values.items():
            if key not in WebhooksSection.__dataclass_fields__:
                raise ConfigError(f"{SECTION}.{key}", "unknown key")
            if key != "endpoints":
                _typed(key, value, getattr(defaults, key))
        cwd = Path.cwd()
        section = build_section(SECTION, WebhooksSection, values, env or {}, cwd, cwd)
        return cls.from_section(section)

    def _check(self) -> None:
        positive = ("failing_after", "max_attempts", "max_age_seconds", "backoff_base_seconds",
                    "backoff_max_seconds", "connect_timeout_seconds", "timeout_seconds",
                    "concurrency", "poll_seconds", "lease_seconds", "max_ids_per_event")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{SECTION}.{name}", "must be greater than 0")
        if self.backoff_max_seconds < self.backoff_base_seconds:
            raise ConfigError(f"{SECTION}.backoff_max_seconds",
                              "must be at least backoff_base_seconds")
        if self.connect_timeout_seconds > self.timeout_seconds:
            raise ConfigError(f"{SECTION}.connect_timeout_seconds",
                              "must not exceed timeout_seconds")
        # a claim must outlive the attempt it covers, or a slow attempt is sent twice
        if self.lease_seconds < 2 * self.timeout_seconds:
            raise ConfigError(f"{SECTION}.lease_seconds", "must be at least 2 x timeout_seconds")


def _typed(key: str, value: Any, default: Any) -> Any:
    name = f"{SECTION}.{key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(name, "must be true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(name, "must be an integer")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, "must be a number")
    return float(value)


def _endpoints(raw: Any) -> tuple[Endpoint, ...]:
    if not isinstance(raw, list):
        raise ConfigError(f"{SECTION}.endpoints", "must be a list of {url, secrets, events}")
    endpoints = tuple(_endpoint(index, item) for index, item in enumerate(raw))
    ids = [endpoint.id for endpoint in endpoints]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{SECTION}.endpoints", "two endpoints have the same id (or URL)")
    return endpoints


def _endpoint(index: int, item: Any) -> Endpoint:
    name = f"{SECTION}.endpoints[{index}]"
    if not isinstance(item, dict):
        raise ConfigError(name, "must be a mapping with url, secrets and events")
    unknown = set(item) - {"id", "url", "secrets", "events"}
    if unknown:
        raise ConfigError(f"{name}.{sorted(unknown)[0]}", "unknown key")
    url = item.get("url")
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise ConfigError(f"{name}.url", f"must be a URL of at most {MAX_URL_LENGTH} characters")
    check_url(f"{name}.url", url)
    endpoint_id = item.get("id", hashlib.sha256(url.encode()).hexdigest()[:16])
    if not isinstance(endpoint_id, str) or not ENDPOINT_ID.fullmatch(endpoint_id):
        raise ConfigError(f"{name}.id", "must be 1 to 64 characters of A-Z a-z 0-9 . _ -")
    secrets = item.get("secrets")
    if isinstance(secrets, str):
        secrets = [secrets]
    if not isinstance(secrets, list) or not secrets:
        raise ConfigError(f"{name}.secrets", "must be a non-empty list of whsec_ secrets")
    for position, secret in enumerate(secrets):
        check_secret(f"{name}.secrets[{position}]", secret)
    events = item.get("events")
    if events is not None:
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise ConfigError(f"{name}.events", "must be a list of event types")
        unknown_types = sorted(set(events) - set(EVENT_TYPES))
        if unknown_types:
            raise ConfigError(f"{name}.events", f"unknown event type {unknown_types[0]!r}; "
                              f"known: {', '.join(EVENT_TYPES)}")
    return Endpoint(id=endpoint_id, url=url, secrets=tuple(secrets),
                    events=frozenset(events) if events is not None else None)


def check_url(name: str, url: str) -> None:
    """Only absolute http(s) URLs with a host; where they may point is checked at delivery."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ConfigError(name, "is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(name, "must be an http:// or https:// URL")
    if not parts.hostname:
        raise ConfigError(name, "must name a host")


def check_secret(name: str, secret: Any) -> None:
    """A `whsec_` prefix and 24 to 64 bytes of base64; the value never enters the message."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ConfigError(name, f"must be a string starting with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(name, "must be base64 after the whsec_ prefix") from None
    if not SECRET_BYTES[0] <= len(key) <= SECRET_BYTES[1]:
        raise ConfigError(name, f"must decode to {SECRET_BYTES[0]} to {SECRET_BYTES[1]} bytes")
