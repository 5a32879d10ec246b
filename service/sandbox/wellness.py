"""Garmin Connect data the sandbox serves: activities and daily wellness, generated per account.

Generated, not stored, so any account has years of history at no cost, and tests can compute
what the sandbox holds (`expected_activities`, `generated_day`) instead of keeping fixtures.
Every value is drawn from a hash of (username, date, index, field name): the same account and
date give identical JSON on every run and in any call order, and no `random` global state is
involved (tests in the same process cannot disturb each other).

Time follows the state clock, in UTC, as everywhere in the sandbox. Past days are frozen.
Today's running totals (steps, calories, stress maximum, Body Battery drain...) grow with the
fraction of the UTC day elapsed, as Garmin's do while the watch uploads, so a syncer that
re-fetches today sees changes. Days after today answer nulls (204 for HRV), as Garmin does.
Activities carry a per-account fixed UTC offset, so local and GMT times (and sometimes dates)
differ and a client mixing them up gets caught.

Pure Python like `state.py`: refusals are SandboxError (400/403) and `app.py` turns answers
into HTTP. The field names are Garmin's; only a useful subset of each payload is produced.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from .accounts import MAX_ACTIVITIES_PER_DAY, Account
from .errors import SandboxError

T = TypeVar("T")

ACTIVITY_PAGE_DEFAULT: Final = 20
ACTIVITY_PAGE_MAX: Final = 100
BODY_BATTERY_MAX_DAYS: Final = 31
ACTIVITY_ID_BASE: Final = 10_000_000_000
"""Activity ids are `base + account key * 10**8 + date ordinal * 20 + slot`: stable as the
clock moves (they depend on the activity's own date, not on its position in the list) and
unique within an account; below 2**53, so JavaScript clients read them exactly."""

_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_UINT: Final = re.compile(r"\d{1,9}")


# --- deterministic draws -----------------------------------------------------------------


class _Draw:
    """Values drawn from a hash of (username, date, index, name): same inputs, same value.

    Each name is hashed on its own, so adding a field never shifts the others' values.
    """

    def __init__(self, username: str, day: dt.date | None, index: int | str) -> None:
        when = day.isoformat() if day is not None else "account"
        self._key = f"{username.casefold()}|{when}|{index}"

    def unit(self, name: str) -> float:
        """A number in [0, 1)."""
        digest = hashlib.blake2b(f"{self._key}|{name}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def integer(self, name: str, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return low + int(self.unit(name) * (high - low + 1))

    def number(self, name: str, low: float, high: float) -> float:
        """A float in [low, high)."""
        return low + self.unit(name) * (high - low)

    def choice(self, name: str, options: Sequence[T]) -> T:
        """One of `options`."""
        return options[int(self.unit(name) * len(options))]


# --- per-account constants ---------------------------------------------------------------

_HOMES: Final = (
    ("Lisbon", 0),
    ("Berlin", 1),
    ("Helsinki", 2),
    ("Boston", -5),
    ("Denver", -7),
    ("Sao Paulo", -3),
    ("Tokyo", 9),
    ("Sydney", 10),
)
"""Where an account trains and its fixed UTC offset (hours, no DST: the sandbox keeps it simple)."""


@dataclass(frozen=True)
class _Profile:
    """What stays the same for an account across days: home, baselines."""

    place: str
    offset: dt.timedelta
    activity_key: int
    resting_hr: int
    bmr_kcal: int
    step_base: int
    hrv_base: int


def _profile(account: Account) -> _Profile:
    draw = _Draw(account.username, None, "profile")
    place, hours = draw.choice("home", _HOMES)
    return _Profile(
        place=place,
        offset=dt.timedelta(hours=hours),
        activity_key=draw.integer("activity_key", 0, 999_999),
        resting_hr=draw.integer("resting_hr", 46, 62),
        bmr_kcal=draw.integer("bmr", 1450, 1950),
        step_base=draw.integer("steps", 5000, 11000),
        hrv_base=draw.integer("hrv", 38, 75),
    )


# --- activities --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sport:
    """How one activity type's numbers are drawn (ranges are typical amateur values)."""

    type_key: str
    type_id: int
    parent_type_id: int
    label: str
    minutes: tuple[int, int]
    speed: tuple[float, float] | None
    heart_rate: tuple[int, int]
    climb: tuple[float, float] | None
    kcal_per_minute: tuple[float, float]


_SPORTS: Final = (
    _Sport("running", 1, 17, "Running", (20, 90), (2.5, 3.9), (135, 165), (5, 250), (10, 14)),
    _Sport("cycling", 2, 17, "Cycling", (30, 180), (5.5, 9.0), (118, 150), (20, 1200), (7, 11)),
    _Sport("walking", 9, 17, "Walking", (15, 80), (1.1, 1.6), (88, 112), (0, 80), (3.5, 5.5)),
    _Sport("swimming", 26, 17, "Swimming", (20, 60), (0.6, 1.0), (115, 145), None, (8, 11)),
    _Sport("strength_training", 13, 29, "Strength", (20, 60), None, (95, 130), None, (5, 8)),
)
ACTIVITY_TYPES: Final = tuple(sport.type_key for sport in _SPORTS)


def _garmin_time(moment: dt.datetime) -> str:
    """Garmin's activity time format ("YYYY-MM-DD HH:MM:SS", no zone)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _ms(moment: dt.datetime) -> int:
    """Epoch milliseconds of a naive datetime that holds a UTC time."""
    return int(moment.replace(tzinfo=dt.UTC).timestamp() * 1000)


def activity_is_malformed(account: Account, day: dt.date, slot: int) -> bool:
    """Whether the `slot`-th activity of local date `day` is served broken.

    The index is the activity's sequence number counted from 0001-01-01
    (`day.toordinal() * activities_per_day + slot`), not its position in a listing, so an
    activity stays good or bad as "today" moves on and the history window slides.
    """
    every = account.malformed_activity_every
    index = day.toordinal() * account.activities_per_day + slot
    return every is not None and index % every == 0


def _activity(account: Account, profile: _Profile, day: dt.date, slot: int) -> dict[str, Any]:
    """The `slot`-th activity (0 = earliest) of local date `day`, as Garmin lists it."""
    draw = _Draw(account.username, day, slot)
    sport = draw.choice("sport", _SPORTS)
    window = 17 * 3600 // account.activities_per_day  # local 05:00-22:00 split into slots
    start_second = 5 * 3600 + slot * window + draw.integer("start", 0, window // 2)
    start_local = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=start_second)
    start_gmt = start_local - profile.offset
    duration = round(draw.number("duration", *sport.minutes) * 60, 3)
    speed = draw.number("speed", *sport.speed) if sport.speed else 0.0
    average_hr = draw.integer("hr", *sport.heart_rate)
    activity: dict[str, Any] = {
        "activityId": (
            ACTIVITY_ID_BASE
            + profile.activity_key * 10**8
            + day.toordinal() * MAX_ACTIVITIES_PER_DAY
            + slot
        ),
        "activityName": f"{profile.place} {sport.label}",
        "activityType": {
            "typeId": sport.type_id,
            "typeKey": sport.type_key,
            "parentTypeId": sport.parent_type_id,
            "isHidden": False,
            "restricted": False,
            "trimmable": True,
        },
        "startTimeLocal": _garmin_time(start_local),
        "startTimeGMT": _garmin_time(start_gmt),
        "beginTimestamp": _ms(start_gmt),
        "duration": duration,
        "elapsedDuration": round(duration + draw.integer("pauses", 0, 300), 3),
        "movingDuration": round(duration * draw.number("moving", 0.92, 1.0), 3),
        "distance": round(duration * speed, 1),
        "averageSpeed": round(speed, 3),
        "calories": float(round(duration / 60 * draw.number("kcal", *sport.kcal_per_minute))),
        "averageHR": float(average_hr),
        "maxHR": float(average_hr + draw.integer("hr_peak", 8, 25)),
        "elevationGain": round(draw.number("climb", *sport.climb), 1) if sport.climb else None,
        "ownerId": account.profile_id,
        "ownerDisplayName": account.display_name,
        "manualActivity": False,
        "hasPolyline": sport.speed is not None and sport.type_key != "swimming",
    }
    if activity_is_malformed(account, day, slot):
        del activity["activityId"]
        activity["startTimeGMT"] = None
    return activity


def _history_start(account: Account, today: dt.date) -> dt.date:
    return today - dt.timedelta(days=account.history_days)


def _activities_between(
    account: Account, first: dt.date, last: dt.date, start: int, limit: int | None
) -> list[dict[str, Any]]:
    """Newest first, positions [start, start+limit) of the activities on local dates first..last.

    Only the requested page is generated: paging through ten years stays cheap.
    """
    per_day = account.activities_per_day
    total = ((last - first).days + 1) * per_day if first <= last else 0
    stop = total if limit is None else min(total, start + limit)
    profile = _profile(account)
    page = []
    for position in range(start, stop):
        day = last - dt.timedelta(days=position // per_day)
        page.append(_activity(account, profile, day, per_day - 1 - position % per_day))
    return page


def expected_activities(account: Account, today: dt.date) -> list[dict[str, Any]]:
    """Every activity the sandbox lists for `account` when its clock says `today`.

    Newest first, malformed ones included (they lack `activityId`), each exactly as the
    activity list endpoint serves it: what a sync test compares its database with.
    """
    return _activities_between(account, _history_start(account, today), today, 0, None)


# --- daily wellness ----------------------------------------------------------------------


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


def _full_day(account: Account, profile: _Profile, day: dt.date) -> _Day:
    draw = _Draw(account.username, day, "day")
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
    account: Account, profile: _Profile, day: dt.date, now: dt.datetime | None
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
    account: Account, profile: _Profile, day: dt.date, values: _Day | None
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
        id=_ms(start_gmt),
        sleepTimeSeconds=asleep,
        napTimeSeconds=0,
        sleepStartTimestampGMT=_ms(start_gmt),
        sleepEndTimestampGMT=_ms(values.sleep_end_local - profile.offset),
        sleepStartTimestampLocal=_ms(start_local),
        sleepEndTimestampLocal=_ms(values.sleep_end_local),
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
    account: Account, profile: _Profile, day: dt.date, values: _Day | None
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
    profile: _Profile, day: dt.date, values: _Day | None, now: dt.datetime | None
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
    profile: _Profile,
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
    profile: _Profile, day: dt.date, values: _Day | None, now: dt.datetime | None
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
    profile = _profile(account)
    values = _day_at(account, profile, day, now)
    return {
        "summary": _summary_json(account, day, values),
        "sleep": _sleep_json(account, profile, day, values),
        "hrv": _hrv_json(account, profile, day, values),
        "stress": _stress_json(account, profile, day, values, now),
        "body_battery": _body_battery_json(profile, day, values, now),
    }


# --- requests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataAnswer:
    """What a data endpoint answers: a JSON body, or None for "204 No Content"."""

    body: Any


def _bad(message: str) -> SandboxError:
    return SandboxError(400, "bad_request", message)


def _parse_date(text: str | None, name: str) -> dt.date:
    if text is None or not _DATE.fullmatch(text):
        raise _bad(f"{name} must be a date YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _bad(f"{name} is not a valid date: {text}") from None


def _optional_date(query: Mapping[str, str], name: str) -> dt.date | None:
    return _parse_date(query[name], name) if name in query else None


def _parse_int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not _UINT.fullmatch(text) or not low <= int(text) <= high:
        raise _bad(f"{name} must be an integer between {low} and {high}")
    return int(text)


def _check_display_name(account: Account, display_name: str) -> None:
    """Garmin answers 403 when the path names someone else's display name."""
    if display_name != account.display_name:
        raise SandboxError(403, "forbidden", "display name does not belong to this token")


@dataclass(frozen=True)
class _Call:
    """One data request: who asks, what matched in the path, its query, and the clock."""

    account: Account
    match: re.Match[str]
    query: Mapping[str, str]
    now: dt.datetime

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(dt.UTC).date()


def _list_activities(call: _Call) -> DataAnswer:
    query, account = call.query, call.account
    start = _parse_int(query, "start", 0, 0, 10**9)
    limit = _parse_int(query, "limit", ACTIVITY_PAGE_DEFAULT, 1, ACTIVITY_PAGE_MAX)
    start_date = _optional_date(query, "startDate")
    end_date = _optional_date(query, "endDate")
    if start_date and end_date and start_date > end_date:
        raise _bad("startDate must not be after endDate")
    first = max(_history_start(account, call.today), start_date or dt.date.min)
    last = min(call.today, end_date or dt.date.max)
    return DataAnswer(_activities_between(account, first, last, start, limit))


def _daily_summary(call: _Call) -> DataAnswer:
    _check_display_name(call.account, call.match["name"])
    day = _parse_date(call.query.get("calendarDate"), "calendarDate")
    return DataAnswer(generated_day(call.account, day, call.now)["summary"])


def _daily_sleep(call: _Call) -> DataAnswer:
    _check_display_name(call.account, call.match["name"])
    day = _parse_date(call.query.get("date"), "date")
    _parse_int(call.query, "nonSleepBufferMinutes", 60, 0, 1440)
    return DataAnswer(generated_day(call.account, day, call.now)["sleep"])


def _hrv(call: _Call) -> DataAnswer:
    day = _parse_date(call.match["day"], "date")
    return DataAnswer(generated_day(call.account, day, call.now)["hrv"])


def _daily_stress(call: _Call) -> DataAnswer:
    day = _parse_date(call.match["day"], "date")
    return DataAnswer(generated_day(call.account, day, call.now)["stress"])


def _body_battery(call: _Call) -> DataAnswer:
    first = _parse_date(call.query.get("startDate"), "startDate")
    last = _parse_date(call.query.get("endDate"), "endDate")
    if not 0 <= (last - first).days < BODY_BATTERY_MAX_DAYS:
        raise _bad(f"the range must be 1 to {BODY_BATTERY_MAX_DAYS} days, start before end")
    days = (first + dt.timedelta(days=offset) for offset in range((last - first).days + 1))
    return DataAnswer([generated_day(call.account, d, call.now)["body_battery"] for d in days])


_ROUTES: Final[tuple[tuple[str, re.Pattern[str], Callable[[_Call], DataAnswer]], ...]] = (
    (
        "activities",
        re.compile(r"/activitylist-service/activities/search/activities"),
        _list_activities,
    ),
    (
        "summary",
        re.compile(r"/usersummary-service/usersummary/daily/(?P<name>[^/]+)"),
        _daily_summary,
    ),
    (
        "sleep",
        re.compile(r"/wellness-service/wellness/dailySleepData/(?P<name>[^/]+)"),
        _daily_sleep,
    ),
    ("hrv", re.compile(r"/hrv-service/hrv/(?P<day>[^/]+)"), _hrv),
    ("stress", re.compile(r"/wellness-service/wellness/dailyStress/(?P<day>[^/]+)"), _daily_stress),
    (
        "body_battery",
        re.compile(r"/wellness-service/wellness/bodyBattery/reports/daily"),
        _body_battery,
    ),
)


def data_family(path: str) -> str | None:
    """The data family (a key of `Account.data_calls`) a connectapi path belongs to, if any."""
    for family, pattern, _ in _ROUTES:
        if pattern.fullmatch(path):
            return family
    return None


def data_answer(
    account: Account, path: str, query: Mapping[str, str], now: dt.datetime
) -> DataAnswer | None:
    """Answer a GET to a data endpoint for the token's account; None if `path` is not one.

    Raises SandboxError (400 bad parameters, 403 someone else's display name).
    """
    for _, pattern, handler in _ROUTES:
        if match := pattern.fullmatch(path):
            return handler(_Call(account, match, query, now))
    return None
