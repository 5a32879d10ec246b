"""Garmin's JSON to our rows, one item at a time: a malformed item is skipped and counted."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

INT_MAX = 2**31 - 1  # the columns' INT and BIGINT ranges: the upserts bind values as they are
BIGINT_MAX = 2**63 - 1


class MalformedItem(ValueError):
    """An item Garmin sent that lacks what we need; the job skips it and goes on."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _int(value: Any) -> int | None:
    number = _number(value)
    if number is None:
        return None
    if not -INT_MAX - 1 <= number <= INT_MAX:
        raise MalformedItem("a number is out of range")
    return int(number)


def _garmin_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise MalformedItem("start time missing")
    try:
        return datetime.strptime(value[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise MalformedItem("start time unreadable") from None


def activity_fields(raw: Any) -> dict[str, Any]:
    """The columns of an `Activity` row from one item of Garmin's activity search."""
    if not isinstance(raw, dict):
        raise MalformedItem("activity is not an object")
    activity_id = raw.get("activityId")
    if isinstance(activity_id, bool) or not isinstance(activity_id, int) or activity_id <= 0:
        raise MalformedItem("activityId missing")
    if activity_id > BIGINT_MAX:
        raise MalformedItem("activityId out of range")
    start_utc = _garmin_time(raw.get("startTimeGMT"))
    local = raw.get("startTimeLocal")
    kind = raw.get("activityType")
    name = raw.get("activityName")
    return {
        "garmin_activity_id": activity_id,
        "activity_type": str(kind.get("typeKey"))[:64] if isinstance(kind, dict) else None,
        "name": name[:255] if isinstance(name, str) else None,
        "start_time_utc": start_utc,
        "start_time_local": local[:19].replace(" ", "T") if isinstance(local, str) else None,
        "duration_seconds": _number(raw.get("duration")),
        "distance_meters": _number(raw.get("distance")),
        "calories": _number(raw.get("calories")),
        "average_hr": _number(raw.get("averageHR")),
        "max_hr": _number(raw.get("maxHR")),
        "elevation_gain": _number(raw.get("elevationGain")),
        "raw_json": raw,
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def day_fields(day: date, sources: dict[str, Any]) -> dict[str, Any]:
    """The columns of a `DailyHealth` row from the day's raw sources (any may be empty)."""
    summary = _dict(sources.get("summary"))
    if sources.get("summary") is not None and not isinstance(sources.get("summary"), dict):
        raise MalformedItem("daily summary is not an object")
    sleep = _dict(_dict(sources.get("sleep")).get("dailySleepDTO"))
    scores = _dict(_dict(sleep.get("sleepScores")).get("overall"))
    hrv = _dict(_dict(sources.get("hrv")).get("hrvSummary"))
    return {
        "calendar_date": day,
        "steps": _int(summary.get("totalSteps")),
        "resting_hr": _int(summary.get("restingHeartRate")),
        "average_stress": _int(summary.get("averageStressLevel")),
        "body_battery_high": _int(summary.get("bodyBatteryHighestValue")),
        "body_battery_low": _int(summary.get("bodyBatteryLowestValue")),
        "sleep_seconds": _int(sleep.get("sleepTimeSeconds")),
        "sleep_score": _int(scores.get("value")),
        "hrv_last_night": _int(hrv.get("lastNightAvg")),
        "raw_json": {name: sources.get(name) for name in ("summary", "sleep", "hrv")},
    }
