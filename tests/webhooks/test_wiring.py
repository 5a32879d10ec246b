"""The wiring's small pieces: the configuration section, the change-reporting upsert, one
event per expiry when two holders of the same session meet Garmin's rejection."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from service.config import ConfigError, load_config
from service.crypto import build_cipher, generate_key
from service.models import GarminAuthenticationState, SessionStatus, SyncJob, WebhookEvent
from service.store import sessions as session_store
from service.store import sql
from service.store import sync as store
from service.store.vault import SessionVault
from service.webhooks import events
from service.webhooks.config import ENDPOINTS_ENV, WebhooksConfig
from service.webhooks.outbox import Outbox
from tests.support.app import Api, use_db
from tests.support.webhooks import new_secret


@pytest.fixture
async def db_api(make_config: Any, start_api: Any) -> Api:
    """An app instance without the scheduler, for its database."""
    api: Api = await start_api(make_config(sync={"enabled": False}))
    use_db(api)
    return api


def test_the_endpoints_variable_is_a_known_setting_and_its_errors_hide_the_secret() -> None:
    secret = new_secret()
    endpoints = [{"id": "ops", "url": "https://ops.example.com/hook", "secrets": [secret]}]
    config = load_config(env={ENDPOINTS_ENV: json.dumps(endpoints),
                              "GARMIN_SYNC_WEBHOOKS_ENABLED": "true"})
    webhooks = WebhooksConfig.from_section(config.webhooks)
    assert webhooks.enabled and [e.id for e in webhooks.endpoints] == ["ops"]
    assert secret not in repr(webhooks)
    with pytest.raises(ConfigError) as caught:
        load_config(env={ENDPOINTS_ENV: json.dumps(endpoints)[:-3]})
    assert caught.value.key == ENDPOINTS_ENV and secret not in str(caught.value)
    bad = [{"url": "https://ops.example.com/hook", "secrets": [secret + "!"]}]
    with pytest.raises(ConfigError) as caught:
        WebhooksConfig.from_section(load_config(env={ENDPOINTS_ENV: json.dumps(bad)}).webhooks)
    assert "secrets[0]" in caught.value.key and secret not in str(caught.value)


def _activity(activity_id: int, name: str) -> dict[str, Any]:
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {"garmin_activity_id": activity_id, "activity_type": "running", "name": name,
            "start_time_utc": start, "start_time_local": "2026-01-02T04:04:05",
            "duration_seconds": 1800.5, "distance_meters": 5000.0, "calories": None,
            "average_hr": 140.0, "max_hr": None, "elevation_gain": 12.5,
            "raw_json": {"activityId": activity_id, "n": [1, "ü", None]}}


async def test_the_upsert_reports_inserted_and_changed_rows_only(db_api: Api) -> None:
    first = datetime(2026, 1, 2, tzinfo=UTC)
    rows = [_activity(1, "a"), _activity(2, "b")]
    async with sql.transaction(SyncJob) as connection:
        changed = await store.upsert_of(store.SyncKind.ACTIVITIES, "u1", rows,
                                        first).apply(connection)
    assert (sorted(changed.inserted), changed.updated) == ([1, 2], [])
    later = first + timedelta(hours=1)
    async with sql.transaction(SyncJob) as connection:
        changed = await store.upsert_of(store.SyncKind.ACTIVITIES, "u1",
                                        [_activity(1, "a"), _activity(2, "renamed"),
                                         _activity(3, "c")], later).apply(connection)
    assert (changed.inserted, changed.updated) == ([3], [2])
    from service.models import Activity
    stamps = dict(await Activity.filter(user_id="u1").values_list("garmin_activity_id",
                                                                  "updated_at"))
    assert stamps == {1: first, 2: later, 3: later}  # the unchanged row was not rewritten
    day = {"calendar_date": first.date(), "steps": 1, "resting_hr": None,
           "sleep_seconds": None, "sleep_score": None, "average_stress": None,
           "body_battery_high": None, "body_battery_low": None, "hrv_last_night": None,
           "raw_json": {}}
    for expected in (([first.date()], []), ([], [])):
        async with sql.transaction(SyncJob) as connection:
            changed = await store.upsert_of(store.SyncKind.HEALTH, "u1", [day],
                                            later).apply(connection)
        assert ([str(d) for d in changed.inserted], changed.updated) == (
            [str(d) for d in expected[0]], expected[1])


async def test_two_holders_of_one_session_expire_it_with_one_event(db_api: Api) -> None:
    outbox = Outbox(WebhooksConfig.from_mapping({"enabled": True, "endpoints": [
        {"id": "main", "url": "https://hooks.example.com/in", "secrets": [new_secret()]}]}))
    await GarminAuthenticationState.create(user_id="u1", session_data="gs1.x",
                                           status=SessionStatus.VALID)
    mine, theirs = await session_store.load("u1"), await session_store.load("u1")
    assert mine is not None and theirs is not None
    vault = SessionVault(build_cipher((generate_key(),), is_sqlite=True, data_dir="."))
    at = datetime.now(UTC)

    async def report(connection: Any) -> None:
        await outbox.emit(connection, events.session_expired("u1", at, "revoked"))

    assert await vault.expire(mine, "revoked", report) is True
    assert await vault.expire(theirs, "revoked", report) is False
    assert await WebhookEvent.filter(user_id="u1").values_list("type", flat=True) == [
        "session.expired"]
