"""Events, their schema, the configuration parser and the address rules, without I/O."""

from __future__ import annotations

import json
import socket
from datetime import UTC, date, datetime

import pytest

from service.config import ConfigError
from service.webhooks import events
from service.webhooks.config import ENDPOINTS_ENV, WebhooksConfig
from service.webhooks.events import EVENT_TYPES, Event, UnsafePayload
from service.webhooks.targets import (
    AddressInfo,
    TargetRefused,
    address_allowed,
    check_target,
    resolve,
)
from tests.support.webhooks import VALIDATOR, new_secret

AT = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)


def every_event() -> list[Event]:
    built = [
        events.session_connected("u1", AT, engine="garth"),
        events.session_connected("u1", AT),
        events.session_expired("u1", AT, "Garmin rejected the refresh"),
        events.session_disconnected("u1", AT),
        events.activities_synced("u1", AT, 7, inserted=2, updated=1, activity_ids=[1, 2, 3],
                                 max_ids=100),
        events.health_synced("u1", AT, 8, [date(2026, 3, 1), date(2026, 2, 28)]),
        events.sync_failing("u1", AT, "activities", 3, 9),
        events.sync_recovered("u1", AT, "health", 10),
    ]
    return [event for event in built if event is not None]


def test_every_event_type_has_a_builder_and_matches_its_schema() -> None:
    built = every_event()
    assert {event.type for event in built} == set(EVENT_TYPES)
    for event in built:
        payload = json.loads(event.body())
        assert VALIDATOR.is_valid(payload), (event.type, list(VALIDATOR.iter_errors(payload)))
        assert payload["type"] == event.type
        assert payload["timestamp"] == "2026-03-01T12:30:05.123Z"
        assert payload["data"]["user_id"] == "u1"


def test_the_schema_refuses_what_an_event_may_not_carry() -> None:
    payload = json.loads(events.session_disconnected("u1", AT).body())
    payload["data"]["password"] = "hunter2"
    assert not VALIDATOR.is_valid(payload)
    wrong_type = json.loads(events.session_disconnected("u1", AT).body())
    wrong_type["type"] = "session.hijacked"
    assert not VALIDATOR.is_valid(wrong_type)


def test_jobs_that_change_nothing_emit_nothing() -> None:
    assert events.activities_synced("u1", AT, 1, 0, 0, [], 100) is None
    assert events.health_synced("u1", AT, 1, []) is None


def test_activity_ids_are_capped_and_the_cap_is_reported() -> None:
    event = events.activities_synced("u1", AT, 1, 5, 0, [1, 2, 3, 4, 5], max_ids=2)
    assert event is not None
    assert event.data["activity_ids"] == [1, 2]
    assert event.data["activity_ids_truncated"] is True
    whole = events.activities_synced("u1", AT, 1, 2, 0, [1, 2], max_ids=2)
    assert whole is not None and whole.data["activity_ids_truncated"] is False


@pytest.mark.parametrize("key", ["access_token", "password", "mfa_code", "session_data",
                                 "client_secret"])
def test_credential_like_keys_are_refused(key: str) -> None:
    with pytest.raises(UnsafePayload):
        Event(events.SESSION_CONNECTED, "u1", AT, {key: "x"})


def test_config_parses_endpoints_and_hides_secrets() -> None:
    secret = new_secret()
    config = WebhooksConfig.from_mapping({
        "enabled": True, "failing_after": 5,
        "endpoints": [{"url": "https://hooks.example.com/in?key=abc", "secrets": [secret],
                       "events": ["sync.failing"]}],
    })
    endpoint = config.endpoints[0]
    assert config.failing_after == 5 and config.max_attempts == 14
    assert len(endpoint.id) == 16 and endpoint.wants("sync.failing")
    assert not endpoint.wants("session.connected")
    shown = repr(config)
    assert secret not in shown and "key=abc" not in shown


def test_endpoints_from_the_environment_replace_the_file() -> None:
    secret = new_secret()
    env = {ENDPOINTS_ENV: json.dumps([{"id": "ops", "url": "https://ops.example.com/hook",
                                       "secrets": [secret]}])}
    config = WebhooksConfig.from_mapping({"endpoints": []}, env)
    assert [e.id for e in config.endpoints] == ["ops"]
    assert config.endpoints[0].events is None


@pytest.mark.parametrize(("values", "key"), [
    ({"endpoints": [{"url": "ftp://example.com/x", "secrets": ["whsec_x"]}]}, "url"),
    ({"endpoints": [{"url": "file:///etc/passwd", "secrets": ["whsec_x"]}]}, "url"),
    ({"endpoints": [{"url": "https://example.com", "secrets": ["plain"]}]}, "secrets[0]"),
    ({"endpoints": [{"url": "https://example.com", "secrets": ["whsec_c2hvcnQ="]}]},
     "secrets[0]"),
    ({"endpoints": [{"url": "https://example.com", "secrets": []}]}, "secrets"),
    ({"endpoints": [{"url": "https://example.com", "secrets": [new_secret()],
                     "events": ["user.deleted"]}]}, "events"),
    ({"endpoints": [{"url": "https://example.com", "secrets": [new_secret()], "x": 1}]},
     "x"),
    ({"timeout_seconds": 40}, "lease_seconds"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"enabled": "yes"}, "enabled"),
    ({"retries": 3}, "retries"),
])
def test_bad_configuration_names_the_key(values: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        WebhooksConfig.from_mapping(values)
    assert key in caught.value.key
    for endpoint in values.get("endpoints", []):  # type: ignore[attr-defined]
        for secret in endpoint.get("secrets", []):
            assert secret not in str(caught.value)


def test_a_bad_json_env_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        WebhooksConfig.from_mapping({}, {ENDPOINTS_ENV: "[{"})


@pytest.mark.parametrize(("address", "allowed"), [
    ("93.184.216.34", True), ("2606:4700::1111", True),
    ("127.0.0.1", False), ("::1", False), ("10.1.2.3", False), ("172.16.0.9", False),
    ("192.168.1.1", False), ("169.254.169.254", False), ("fd00:ec2::254", False),
    ("fe80::1", False), ("224.0.0.1", False), ("0.0.0.0", False), ("100.64.0.1", False),
    ("240.0.0.1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("not-an-address", False),
])
def test_only_public_addresses_are_allowed(address: str, allowed: bool) -> None:
    assert address_allowed(address) is allowed


def test_check_target_refuses_schemes_and_private_literals() -> None:
    for url in ("ftp://93.184.216.34/x", "gopher://example.com/", "file:///etc/passwd"):
        with pytest.raises(TargetRefused):
            check_target(url, allow_private=True)
    for url in ("http://127.0.0.1:8080/x", "http://[::1]/x", "http://169.254.169.254/latest"):
        with pytest.raises(TargetRefused):
            check_target(url, allow_private=False)
        check_target(url, allow_private=True)
    check_target("https://hooks.example.com/in", allow_private=False)  # names: at connect


class Answers:
    """A DNS stand-in (as `loop.getaddrinfo`): the given addresses for any name."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses

    async def __call__(self, host: str, port: int, **_: object) -> AddressInfo:
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM,
                 6, "", (address, port)) for address in self.addresses]


@pytest.mark.parametrize("addresses", [
    ("169.254.169.254",), ("10.0.0.7",), ("93.184.216.34", "192.168.0.2"),
    ("fd00:ec2::254",), ("::ffff:127.0.0.1",),
])
async def test_a_name_resolving_to_any_private_or_metadata_address_is_refused(
        addresses: tuple[str, ...]) -> None:
    with pytest.raises(TargetRefused):
        await resolve("hooks.example.com", 443, False, Answers(*addresses))
    allowed = await resolve("hooks.example.com", 443, True, Answers(*addresses))
    assert [address[0] for _, address in allowed] == list(addresses)


async def test_a_name_resolving_to_public_addresses_only_is_allowed() -> None:
    resolved = await resolve("hooks.example.com", 443, False,
                             Answers("93.184.216.34", "2606:4700::1111"))
    assert len(resolved) == 2
