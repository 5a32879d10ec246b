"""Garmin Connect daily wellness the sandbox serves: summary, sleep, HRV, stress, Body Battery.

Generated per account and date (see `draw.py`), not stored. Time follows the state clock, in
UTC, as everywhere in the sandbox. Past days are frozen. Today's running totals (steps,
calories, stress maximum, Body Battery drain...) grow with the fraction of the UTC day
elapsed, as Garmin's do while the watch uploads, so a syncer that re-fetches today sees
changes. Days after today answer nulls (204 for HRV), as Garmin does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .accounts import Account
from .draw import Draw, Profile, account_profile, epoch_ms


@dataclass(frozen=True)
class _Day:
    """One day's complete numbers; `_scaled` trims the running totals for today."""

    steps: int
    step_goal: int
    distance_m: int
    active_kcal: int
    bmr_kcal: int
    resting_hr: int
    min_hr: int
    max_hr: int
    avg_stress: int
    max_stress: int
    bb_high: int
    bb_low: int
    bb_charged: int
    bb_drained: int
    sleep_end_local: dt.datetime
    deep_s: int
    light_s: int
    rem_s: int
    awake_s: int
    sleep_score: int
    has_hrv: bool
    hrv_weekly: int
    hrv_night: int
    hrv_high: int


def _full_day(account: Account, profile: Profile, day: dt.date) -> _Day:
    draw = Draw(account.username, day, "day")
    steps = max(800, profile.step_base + draw.integer("steps", -4000, 6000))
    resting = profile.resting_hr + draw.integer("resting_hr", -3, 4)
    avg_stress = draw.integer("avg_stress", 18, 45)
    bb_high = draw.integer("bb_high", 55, 100)
    sleep_total = draw.integer("sleep", 5 * 3600 + 1800, 8 * 3600 + 1800)
    deep = round(sleep_total * draw.number("deep", 0.12, 0.22))
    rem = round(sleep_total * draw.number("rem", 0.17, 0.25))
    wake_second = draw.integer("wake", 5 * 3600 + 1800, 8 * 3600 + 1800)
    score = 40 + (sleep_total - 19_800) * 45 // 10_800 + draw.integer("score", -8, 8)
    hrv_weekly = profile.hrv_base + draw.integer("hrv_weekly", -14, 10)
    hrv_night = hrv_weekly + draw.integer("hrv_night", -12, 12)
    return _Day(
        steps=steps,
        step_goal=8000,
        distance_m=round(steps * draw.number("stride", 0.68, 0.82)),
        active_kcal=round(steps * draw.number("kcal_per_step", 0.035, 0.05)),
        bmr_kcal=profile.bmr_kcal,
        resting_hr=resting,
        min_hr=resting - draw.integer("min_hr", 2, 6),
        max_hr=draw.integer("max_hr", 120, 175),
        avg_stress=avg_stress,
        max_stress=min(99, avg_stress + draw.integer("max_stress", 30, 60)),
        bb_high=bb_high,
        bb_low=draw.integer("bb_low", 5, bb_high - 25),
        bb_charged=draw.integer("bb_charged", 25, 80),
        bb_drained=draw.integer("bb_drained", 25, 80),
        sleep_end_local=dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=wake_second),
        deep_s=deep,
        rem_s=rem,
        light_s=sleep_total - deep - rem,
        awake_s=draw.integer("awake", 300, 2400),
        sleep_score=max(25, min(98, score)),
        has_hrv=draw.integer("hrv_missing", 0, 6) != 0,  # about one night in seven
        hrv_weekly=hrv_weekly,
        hrv_night=hrv_night,
        hrv_high=hrv_night + draw.integer("hrv_high", 8, 30),
    )


def _scaled(full: _Day, fraction: float) -> _Day:
    """Today so far: running totals and the day's extremes reached by `fraction` of it."""

    def part(value: int) -> int:
        return round(value * fraction)

    return dataclasses.replace(
        full,
        steps=part(full.steps),
        distance_m=part(full.distance_m),
        active_kcal=part(full.active_kcal),
        bmr_kcal=part(full.bmr_kcal),
        max_stress=full.avg_stress + part(full.max_stress - full.avg_stress),
        bb_low=full.bb_high - part(full.bb_high - full.bb_low),
        bb_charged=part(full.bb_charged),
        bb_drained=part(full.bb_drained),
    )


def _day_at(
    account: Account, profile: Profile, day: dt.date, now: dt.datetime | None
) -> _Day | None:
    """The day's numbers as seen at `now`: None after today, partial today, else complete."""
    full = _full_day(account, profile, day)
    if now is None:
        return full
    utc = now.astimezone(dt.UTC)
    if day > utc.date():
        return None
    if day == utc.date():
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        return _scaled(full, (utc - midnight).total_seconds() / 86_400)
    return full


def _sleep_qualifier(score: int) -> str:
    if score >= 90:
        return "EXCELLENT"
    if score >= 80:
        return "GOOD"
    return "FAIR" if score >= 60 else "POOR"


def _summary_json(account: Account, day: dt.date, values: _Day | None) -> dict[str, Any]:
    def pick(read: Callable[[_Day], int]) -> int | None:
        return read(values) if values is not None else None

    return {
        "userProfileId": account.profile_id,
        "calendarDate": day.isoformat(),
        "totalSteps": pick(lambda v: v.steps),
        "dailyStepGoal": pick(lambda v: v.step_goal),
        "totalDistanceMeters": pick(lambda v: v.distance_m),
        "totalKilocalories": pick(lambda v: v.bmr_kcal + v.active_kcal),
        "activeKilocalories": pick(lambda v: v.active_kcal),
        "bmrKilocalories": pick(lambda v: v.bmr_kcal),
        "restingHeartRate": pick(lambda v: v.resting_hr),
        "minHeartRate": pick(lambda v: v.min_hr),
        "maxHeartRate": pick(lambda v: v.max_hr),
        "averageStressLevel": pick(lambda v: v.avg_stress),
        "maxStressLevel": pick(lambda v: v.max_stress),
        "bodyBatteryHighestValue": pick(lambda v: v.bb_high),
        "bodyBatteryLowestValue": pick(lambda v: v.bb_low),
        "bodyBatteryMostRecentValue": pick(lambda v: v.bb_low),
        "privacyProtected": False,
    }


def _sleep_json(
    account: Account, profile: Profile, day: dt.date, values: _Day | None
) -> dict[str, Any]:
    dto: dict[str, Any] = {
        "id": None,
        "userProfilePK": account.profile_id,
        "calendarDate": day.isoformat(),
        "sleepTimeSeconds": None,
        "napTimeSeconds": None,
        "sleepStartTimestampGMT": None,
        "sleepEndTimestampGMT": None,
        "sleepStartTimestampLocal": None,
        "sleepEndTimestampLocal": None,
        "deepSleepSeconds": None,
        "lightSleepSeconds": None,
        "remSleepSeconds": None,
        "awakeSleepSeconds": None,
    }
    if values is None:  # Garmin leaves sleepScores out when there is no sleep record
        return {"dailySleepDTO": dto}
    asleep = values.deep_s + values.light_s + values.rem_s
    start_local = values.sleep_end_local - dt.timedelta(seconds=asleep + values.awake_s)
    start_gmt = start_local - profile.offset
    dto.update(
        id=epoch_ms(start_gmt),
        sleepTimeSeconds=asleep,
        napTimeSeconds=0,
        sleepStartTimestampGMT=epoch_ms(start_gmt),
        sleepEndTimestampGMT=epoch_ms(values.sleep_end_local - profile.offset),
        sleepStartTimestampLocal=epoch_ms(start_local),
        sleepEndTimestampLocal=epoch_ms(values.sleep_end_local),
        deepSleepSeconds=values.deep_s,
        lightSleepSeconds=values.light_s,
        remSleepSeconds=values.rem_s,
        awakeSleepSeconds=values.awake_s,
        sleepScores={
            "overall": {
                "value": values.sleep_score,
                "qualifierKey": _sleep_qualifier(values.sleep_score),
            }
        },
    )
    return {"dailySleepDTO": dto}


def _hrv_json(
    account: Account, profile: Profile, day: dt.date, values: _Day | None
) -> dict[str, Any] | None:
    """Garmin's HRV answer, or None for a night without HRV (the endpoint answers 204)."""
    if values is None or not values.has_hrv:
        return None
    baseline = {
        "lowUpper": profile.hrv_base - 12,
        "balancedLow": profile.hrv_base - 6,
        "balancedUpper": profile.hrv_base + 8,
        "markerValue": 0.5,
    }
    if baseline["balancedLow"] <= values.hrv_weekly <= baseline["balancedUpper"]:
        status = "BALANCED"
    elif values.hrv_weekly < baseline["lowUpper"]:
        status = "LOW"
    else:
        status = "UNBALANCED"
    created = values.sleep_end_local - profile.offset + dt.timedelta(minutes=5)
    return {
        "userProfilePk": account.profile_id,
        "hrvSummary": {
            "calendarDate": day.isoformat(),
            "weeklyAvg": values.hrv_weekly,
            "lastNightAvg": values.hrv_night,
            "lastNight5MinHigh": values.hrv_high,
            "baseline": baseline,
            "status": status,
            "feedbackPhrase": f"HRV_{status}_1",
            "createTimeStamp": created.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        },
        "hrvReadings": [],
    }


def _wellness_window(
    profile: Profile, day: dt.date, values: _Day | None, now: dt.datetime | None
) -> dict[str, str | None]:
    """Start and end of the (UTC) wellness day in Garmin's format; today ends at `now`."""
    if values is None:
        keys = ("startTimestampGMT", "endTimestampGMT", "startTimestampLocal", "endTimestampLocal")
        return dict.fromkeys(keys, None)
    start = dt.datetime.combine(day, dt.time())
    end = start + dt.timedelta(days=1, seconds=-1)
    if now is not None and now.astimezone(dt.UTC).date() == day:
        end = now.astimezone(dt.UTC).replace(tzinfo=None, microsecond=0)

    def text(moment: dt.datetime) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.0")

    return {
        "startTimestampGMT": text(start),
        "endTimestampGMT": text(end),
        "startTimestampLocal": text(start + profile.offset),
        "endTimestampLocal": text(end + profile.offset),
    }


def _stress_json(
    account: Account,
    profile: Profile,
    day: dt.date,
    values: _Day | None,
    now: dt.datetime | None,
) -> dict[str, Any]:
    return {
        "userProfilePK": account.profile_id,
        "calendarDate": day.isoformat(),
        **_wellness_window(profile, day, values, now),
        "maxStressLevel": values.max_stress if values else None,
        "avgStressLevel": values.avg_stress if values else None,
        "stressValuesArray": [],
        "bodyBatteryValuesArray": [],
    }


def _body_battery_json(
    profile: Profile, day: dt.date, values: _Day | None, now: dt.datetime | None
) -> dict[str, Any]:
    return {
        "date": day.isoformat(),
        "charged": values.bb_charged if values else None,
        "drained": values.bb_drained if values else None,
        **_wellness_window(profile, day, values, now),
        "bodyBatteryValuesArray": [],
        "bodyBatteryValueDescriptorDTOList": [],
    }


def generated_day(account: Account, day: dt.date, now: dt.datetime | None = None) -> dict[str, Any]:
    """The wellness JSON the sandbox serves for `day`, keyed by endpoint family.

    Keys: "summary", "sleep", "hrv" (None where the endpoint answers 204), "stress",
    "body_battery" (the day's item of the daily report); each value is exactly the body
    the endpoint returns. Without `now` the day is complete (what it answers once the day
    is over); with `now` (the sandbox's clock) it is what the endpoints answer at that
    moment: partial for today, nulls after today.
    """
    profile = account_profile(account)
    values = _day_at(account, profile, day, now)
    return {
        "summary": _summary_json(account, day, values),
        "sleep": _sleep_json(account, profile, day, values),
        "hrv": _hrv_json(account, profile, day, values),
        "stress": _stress_json(account, profile, day, values, now),
        "body_battery": _body_battery_json(profile, day, values, now),
    }
