"""The sandbox's Garmin Connect data endpoints: activities, daily summary, sleep, HRV, stress,
Body Battery. Driven over HTTP with Bearer tokens (and once through garth), with the sandbox
clock pinned so "today" is known: in the evening, once every activity of today has started
for the accounts here (test_activities_clock.py covers the hours before)."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from typing import Any

import pytest

from service.sandbox import (
    DATA_FAMILIES,
    Account,
    Fault,
    SandboxState,
    ValidationError,
    accounts_from_seed,
    activity_is_malformed,
    expected_activities,
    generated_day,
)
from tests.support.aliases import Http
from tests.support.routing import sandbox_client
from tests.support.sandbox import (
    ACTIVITIES,
    ALICE,
    ALICE_PASSWORD,
    BOB,
    BOB_PASSWORD,
    FakeClock,
    account,
    all_pages,
    bearer,
    get_json,
)

NOW = dt.datetime(2025, 3, 10, 19, 50, tzinfo=dt.UTC)
TODAY = NOW.date()
YESTERDAY = TODAY - dt.timedelta(days=1)
SUMMARY = "/connectapi/usersummary-service/usersummary/daily/{name}"
SLEEP = "/connectapi/wellness-service/wellness/dailySleepData/{name}"
HRV = "/connectapi/hrv-service/hrv/{day}"
STRESS = "/connectapi/wellness-service/wellness/dailyStress/{day}"
BODY_BATTERY = "/connectapi/wellness-service/wellness/bodyBattery/reports/daily"


@pytest.fixture
def clock() -> FakeClock:
    """Pin the sandbox clock (overrides conftest's real-time one): today is 2025-03-10."""
    return FakeClock(NOW.timestamp())


# --- activities ------------------------------------------------------------------------------


async def test_activities_are_deterministic_per_account_and_shaped_like_garmin(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    alice, bob = bearer(sbx_state, ALICE, ALICE_PASSWORD), bearer(sbx_state, BOB, BOB_PASSWORD)
    first = await get_json(sbx_http, ACTIVITIES, alice, start=0, limit=5)
    random.seed(1)  # generation must not depend on the global random state
    second = await get_json(sbx_http, ACTIVITIES, alice, start=0, limit=5)
    random.seed(2)
    assert first == second == expected_activities(account(sbx_state, ALICE), TODAY)[:5]
    assert first != await get_json(sbx_http, ACTIVITIES, bob, start=0, limit=5)
    fresh = SandboxState([Account(username=ALICE, password="other")])  # another run, same user
    assert expected_activities(account(fresh, ALICE), TODAY)[:5] == first

    newest = first[0]
    assert newest["startTimeLocal"].startswith(TODAY.isoformat())
    assert newest["activityType"]["typeKey"] in {
        "running",
        "cycling",
        "walking",
        "swimming",
        "strength_training",
    }
    assert isinstance(newest["activityId"], int) and isinstance(
        newest["activityType"]["typeId"], int
    )
    assert isinstance(newest["duration"], float) and isinstance(newest["distance"], float)
    for key in ("activityName", "calories", "averageHR", "maxHR", "elevationGain"):
        assert key in newest
    gmt = dt.datetime.strptime(newest["startTimeGMT"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    assert newest["beginTimestamp"] == int(gmt.timestamp() * 1000)
    stamps = [item["beginTimestamp"] for item in first]
    assert stamps == sorted(stamps, reverse=True)


async def test_paging_covers_every_activity_exactly_once(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.update_account(ALICE, {"history_days": 20, "activities_per_day": 3})
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    items = await all_pages(sbx_http, headers, limit=10)
    assert len(items) == 21 * 3 == len({item["activityId"] for item in items})
    assert items == expected_activities(account(sbx_state, ALICE), TODAY)
    assert account(sbx_state, ALICE).data_calls["activities"] == 7  # 6 full pages + 1 short
    local_days = {item["startTimeLocal"][:10] for item in items}
    assert min(local_days) == (TODAY - dt.timedelta(days=20)).isoformat()
    beyond = await get_json(sbx_http, ACTIVITIES, headers, start=63, limit=100)
    assert beyond == []


async def test_no_activities_when_activities_per_day_is_zero(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.update_account(ALICE, {"activities_per_day": 0})
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    assert await get_json(sbx_http, ACTIVITIES, headers, start=0, limit=100) == []


async def test_start_and_end_date_filter_by_local_date_inclusive(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.update_account(ALICE, {"activities_per_day": 2})
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    everything = expected_activities(account(sbx_state, ALICE), TODAY)
    first, last = "2025-03-01", "2025-03-04"
    window = await all_pages(sbx_http, headers, limit=3, startDate=first, endDate=last)
    assert window == [a for a in everything if first <= a["startTimeLocal"][:10] <= last]
    assert len(window) == 4 * 2
    since = await all_pages(sbx_http, headers, limit=100, startDate="2025-03-08")
    assert len(since) == 3 * 2 and since == everything[:6]
    until = await all_pages(sbx_http, headers, limit=100, endDate="2000-01-01")
    assert until == []
    before_history = await all_pages(sbx_http, headers, limit=100, startDate="2020-01-01")
    assert before_history == everything and len(everything) == 61 * 2


async def test_malformed_activities_appear_at_the_expected_indices(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    sbx_state.update_account(
        ALICE, {"history_days": 30, "activities_per_day": 2, "malformed_activity_every": 4}
    )
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    items = await all_pages(sbx_http, headers, limit=25)
    assert items == expected_activities(account(sbx_state, ALICE), TODAY)
    expected_bad = [
        position
        for position in range(len(items))
        # documented index: activity sequence number since 0001-01-01, per_day slots a day
        if ((TODAY - dt.timedelta(days=position // 2)).toordinal() * 2 + 1 - position % 2) % 4 == 0
    ]
    bad = [position for position, item in enumerate(items) if "activityId" not in item]
    assert bad == expected_bad and 0 < len(bad) < len(items)
    for position in bad:
        assert items[position]["startTimeGMT"] is None
        day = dt.date.fromisoformat(items[position]["startTimeLocal"][:10])
        assert activity_is_malformed(account(sbx_state, ALICE), day, 1 - position % 2)
    good = [item for item in items if "activityId" in item]
    assert all(isinstance(item["startTimeGMT"], str) for item in good)


@pytest.mark.parametrize(
    "params",
    [
        {"start": -1},
        {"start": "abc"},
        {"limit": 0},
        {"limit": 101},
        {"startDate": "2025-13-01"},
        {"startDate": "20250301"},
        {"endDate": "yesterday"},
        {"startDate": "2025-03-05", "endDate": "2025-03-01"},
    ],
)
async def test_bad_activity_parameters_answer_400_json(
    sbx_http: Http, sbx_state: SandboxState, params: dict[str, Any]
) -> None:
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    body = await get_json(sbx_http, ACTIVITIES, headers, expect=400, **params)
    assert body["error"] == "bad_request" and body["message"]


# --- daily summary and the clock ---------------------------------------------------------------


async def test_summary_matches_generated_day_and_future_is_null(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    path = SUMMARY.format(name="alice")
    summary = await get_json(sbx_http, path, headers, calendarDate=YESTERDAY)
    assert summary == generated_day(account(sbx_state, ALICE), YESTERDAY)["summary"]
    assert summary["calendarDate"] == YESTERDAY.isoformat()
    for key in (
        "totalSteps",
        "restingHeartRate",
        "averageStressLevel",
        "maxStressLevel",
        "bodyBatteryHighestValue",
        "bodyBatteryLowestValue",
        "totalKilocalories",
    ):
        assert isinstance(summary[key], int), key
    assert summary["bodyBatteryLowestValue"] <= summary["bodyBatteryHighestValue"]
    tomorrow = TODAY + dt.timedelta(days=1)
    future = await get_json(sbx_http, path, headers, calendarDate=tomorrow)
    assert future["calendarDate"] == tomorrow.isoformat() and future["totalSteps"] is None
    assert future["restingHeartRate"] is None and future["bodyBatteryHighestValue"] is None


async def test_today_changes_as_the_clock_advances_but_yesterday_is_frozen(
    sbx_http: Http, sbx_state: SandboxState, clock: FakeClock
) -> None:
    sbx_state.update_account(ALICE, {"oauth2_lifetime_seconds": 86_400})  # outlive the advance
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    path = SUMMARY.format(name="alice")

    async def both() -> tuple[Any, Any]:
        return (
            await get_json(sbx_http, path, headers, calendarDate=TODAY),
            await get_json(sbx_http, path, headers, calendarDate=YESTERDAY),
        )

    earlier_today, earlier_yesterday = await both()
    clock.advance(4 * 3600)
    later_today, later_yesterday = await both()
    assert later_yesterday == earlier_yesterday
    assert later_today["totalSteps"] > earlier_today["totalSteps"] > 0
    assert later_today["totalKilocalories"] > earlier_today["totalKilocalories"]
    assert later_today["maxStressLevel"] >= earlier_today["maxStressLevel"]
    full = generated_day(account(sbx_state, ALICE), TODAY)["summary"]
    assert later_today["totalSteps"] < full["totalSteps"]
    now = dt.datetime.fromtimestamp(clock.now, tz=dt.UTC)
    assert later_today == generated_day(account(sbx_state, ALICE), TODAY, now)["summary"]
    stress = await get_json(sbx_http, STRESS.format(day=TODAY), headers)
    assert stress["maxStressLevel"] == later_today["maxStressLevel"]
    assert stress["endTimestampGMT"] == "2025-03-10T23:50:00.0"
    assert account(sbx_state, ALICE).data_calls["summary"] == 4


@pytest.mark.parametrize("template", [SUMMARY, SLEEP])
async def test_someone_elses_display_name_is_403_and_bad_dates_400(
    sbx_http: Http, sbx_state: SandboxState, template: str
) -> None:
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    key = "calendarDate" if template == SUMMARY else "date"
    bob = await get_json(sbx_http, template.format(name="bob"), headers, 403, **{key: TODAY})
    assert bob["error"] == "forbidden"
    mine = template.format(name="alice")
    for value in ("2025-02-30", "tomorrow", ""):
        await get_json(sbx_http, mine, headers, 400, **{key: value})
    await get_json(sbx_http, mine, headers, 400)  # the date is required


# --- sleep, HRV, stress, Body Battery ----------------------------------------------------------


async def test_sleep_shape(sbx_http: Http, sbx_state: SandboxState) -> None:
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    path = SLEEP.format(name="alice")
    body = await get_json(sbx_http, path, headers, date=YESTERDAY, nonSleepBufferMinutes=60)
    dto = body["dailySleepDTO"]
    assert dto["calendarDate"] == YESTERDAY.isoformat()
    stages = dto["deepSleepSeconds"] + dto["lightSleepSeconds"] + dto["remSleepSeconds"]
    assert dto["sleepTimeSeconds"] == stages and dto["awakeSleepSeconds"] > 0
    assert 0 < dto["sleepScores"]["overall"]["value"] <= 100
    assert body == generated_day(account(sbx_state, ALICE), YESTERDAY)["sleep"]
    await get_json(sbx_http, path, headers, 400, date=YESTERDAY, nonSleepBufferMinutes="x")


async def test_hrv_answers_204_on_some_nights(sbx_http: Http, sbx_state: SandboxState) -> None:
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    alice = account(sbx_state, ALICE)
    days = [TODAY - dt.timedelta(days=offset) for offset in range(42)]
    missing = []
    for day in days:
        response = await sbx_http.get(HRV.format(day=day), headers=headers)
        if response.status == 204:
            assert await response.read() == b""
            missing.append(day)
            continue
        assert response.status == 200
        summary = (await response.json())["hrvSummary"]
        assert summary["calendarDate"] == day.isoformat()
        assert summary["lastNight5MinHigh"] > summary["lastNightAvg"] > 0
        assert summary["status"] in {"BALANCED", "UNBALANCED", "LOW"}
        assert isinstance(summary["weeklyAvg"], int)
    assert missing == [day for day in days if generated_day(alice, day)["hrv"] is None]
    assert 1 <= len(missing) <= 14  # about one night in seven
    future = await sbx_http.get(HRV.format(day=TODAY + dt.timedelta(days=1)), headers=headers)
    assert future.status == 204
    assert (await sbx_http.get(HRV.format(day="2025-1-1"), headers=headers)).status == 400
    assert alice.data_calls["hrv"] == 44


async def test_stress_and_body_battery(sbx_http: Http, sbx_state: SandboxState) -> None:
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    stress = await get_json(sbx_http, STRESS.format(day=YESTERDAY), headers)
    assert stress["calendarDate"] == YESTERDAY.isoformat()
    assert 0 < stress["avgStressLevel"] <= stress["maxStressLevel"] <= 100
    await get_json(sbx_http, STRESS.format(day="2025-02-29"), headers, 400)

    week = await get_json(
        sbx_http, BODY_BATTERY, headers, startDate="2025-03-04", endDate=TODAY.isoformat()
    )
    assert [item["date"] for item in week] == [f"2025-03-{d:02d}" for d in range(4, 11)]
    for item in week:
        assert {"charged", "drained", "startTimestampGMT", "endTimestampGMT"} <= set(item)
        assert item["bodyBatteryValuesArray"] == []
    assert week[-1]["endTimestampGMT"] == "2025-03-10T19:50:00.0"  # today ends "now"
    assert week[-2] == generated_day(account(sbx_state, ALICE), YESTERDAY)["body_battery"]
    month: dict[str, Any] = {"startDate": "2025-02-08", "endDate": "2025-03-10"}
    assert len(await get_json(sbx_http, BODY_BATTERY, headers, **month)) == 31
    for params in (
        {"startDate": "2025-02-07", "endDate": "2025-03-10"},
        {"startDate": "2025-03-10", "endDate": "2025-03-09"},
        {"startDate": "2025-03-10"},
        {},
    ):
        await get_json(sbx_http, BODY_BATTERY, headers, 400, **params)


# --- the Bearer machinery applies to data endpoints too ------------------------------------------


async def test_faults_latency_and_token_checks_apply_to_data_endpoints(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    sbx_state.set_fault(ALICE, "api", Fault(status=429, retry_after=9, times=1))
    limited = await sbx_http.get(ACTIVITIES, headers=headers)
    assert limited.status == 429 and limited.headers["Retry-After"] == "9"
    assert (await sbx_http.get(ACTIVITIES, headers=headers)).status == 200
    sbx_state.set_fault(ALICE, "api", Fault(html=True, status=502, times=1))
    page = await sbx_http.get(HRV.format(day=YESTERDAY), headers=headers)
    assert (page.status, page.content_type) == (502, "text/html")

    sbx_state.update_account(ALICE, {"latency_ms": 200})
    started = time.monotonic()
    await get_json(sbx_http, STRESS.format(day=YESTERDAY), headers)
    assert time.monotonic() - started >= 0.2
    sbx_state.update_account(ALICE, {"latency_ms": 0})

    assert (await sbx_http.get(ACTIVITIES)).status == 401
    bogus = {"Authorization": "Bearer sbx-at-" + "0" * 32}
    assert (await sbx_http.get(ACTIVITIES, headers=bogus)).status == 401
    sbx_state.expire_access_tokens(ALICE)
    expired = await sbx_http.get(SUMMARY.format(name="alice"), headers=headers)
    assert expired.status == 401 and (await expired.json())["error"] == "TOKEN_EXPIRED"

    alice = account(sbx_state, ALICE)
    assert alice.data_calls == {
        "activities": 2,
        "summary": 1,
        "sleep": 0,
        "hrv": 1,
        "stress": 1,
        "body_battery": 0,
    }
    assert alice.api_calls == 5
    data_records = [r for r in sbx_state.requests if r.account == ALICE]
    assert [r.status for r in data_records] == [429, 200, 502, 200, 401]
    assert {r.token_account for r in data_records} == {ALICE}
    assert all(r.scope == "api" and "?" not in r.path for r in data_records)


async def test_each_token_sees_its_own_accounts_data(
    sbx_http: Http, sbx_state: SandboxState
) -> None:
    alice, bob = bearer(sbx_state, ALICE, ALICE_PASSWORD), bearer(sbx_state, BOB, BOB_PASSWORD)
    for headers, username, name in ((alice, ALICE, "alice"), (bob, BOB, "bob")):
        items = await get_json(sbx_http, ACTIVITIES, headers, limit=3)
        assert {item["ownerDisplayName"] for item in items} == {name}
        assert items == expected_activities(account(sbx_state, username), TODAY)[:3]
        summary = await get_json(sbx_http, SUMMARY.format(name=name), headers, calendarDate=TODAY)
        assert summary["userProfileId"] == account(sbx_state, username).profile_id
    assert account(sbx_state, ALICE).data_calls["activities"] == 1
    assert account(sbx_state, BOB).data_calls["activities"] == 1


async def test_garth_reads_the_data_endpoints(sbx_url: str, sbx_state: SandboxState) -> None:
    client = sandbox_client(sbx_url, "user-a")
    await asyncio.to_thread(client.login, ALICE, ALICE_PASSWORD, return_on_mfa=True)
    alice = account(sbx_state, ALICE)
    params = {"start": 0, "limit": 2, "startDate": "2025-03-01", "endDate": TODAY.isoformat()}
    items = await asyncio.to_thread(
        client.connectapi, "/activitylist-service/activities/search/activities", params=params
    )
    assert items == expected_activities(alice, TODAY)[:2]
    nights = (TODAY - dt.timedelta(days=offset) for offset in range(1, 60))
    missing = next(day for day in nights if generated_day(alice, day)["hrv"] is None)
    assert await asyncio.to_thread(client.connectapi, f"/hrv-service/hrv/{missing}") is None
    assert [r.caller for r in sbx_state.requests if r.scope == "api"] == ["user-a", "user-a"]


# --- account options ---------------------------------------------------------------------------


async def test_data_options_are_validated_and_visible(sbx_http: Http) -> None:
    path = f"/_sandbox/accounts/{ALICE}"
    shown = await (await sbx_http.get(path)).json()
    assert (shown["history_days"], shown["activities_per_day"]) == (60, 1)
    assert shown["malformed_activity_every"] is None
    assert shown["data_calls"] == dict.fromkeys(DATA_FAMILIES, 0)
    refused: tuple[dict[str, Any], ...] = (
        {"history_days": -1},
        {"history_days": 3651},
        {"activities_per_day": 21},
        {"activities_per_day": True},
        {"malformed_activity_every": 1},
        {"malformed_activity_every": "3"},
        {"data_calls": {}},
    )
    for bad in refused:
        assert (await sbx_http.patch(path, json=bad)).status == 400, bad
    good = {"history_days": 0, "activities_per_day": 20, "malformed_activity_every": 1000}
    patched = await (await sbx_http.patch(path, json=good)).json()
    assert {key: patched[key] for key in good} == good
    cleared = await sbx_http.patch(path, json={"malformed_activity_every": None})
    assert (await cleared.json())["malformed_activity_every"] is None


def test_seed_accepts_data_options() -> None:
    [seeded] = accounts_from_seed(
        {
            "accounts": [
                {
                    "username": "s@example.com",
                    "password": "p",
                    "history_days": 7,
                    "activities_per_day": 2,
                    "malformed_activity_every": 5,
                }
            ]
        }
    )
    assert (seeded.history_days, seeded.activities_per_day) == (7, 2)
    assert seeded.malformed_activity_every == 5
    assert len(expected_activities(seeded, TODAY)) == 8 * 2
    with pytest.raises(ValidationError, match="activities_per_day"):
        accounts_from_seed(
            {"accounts": [{"username": "s", "password": "p", "activities_per_day": 99}]}
        )
