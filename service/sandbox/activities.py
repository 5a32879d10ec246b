"""Garmin Connect activities the sandbox lists, generated per account and local date.

Activities carry a per-account fixed UTC offset, so local and GMT times (and sometimes dates)
differ and a client mixing them up gets caught.

Invariant: no listed activity starts after the sandbox clock's "now". The day's slots split
local 05:00-22:00 and each activity starts in the first half of its slot, so an account's
activities in (date, slot) order are in start order; newest first, the ones that have not
started yet are a prefix of the list, and the listing skips exactly that prefix.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from .accounts import MAX_ACTIVITIES_PER_DAY, Account
from .draw import Draw, Profile, account_profile, epoch_ms

ACTIVITY_ID_BASE: Final = 10_000_000_000
"""Activity ids are `base + account key * 10**8 + date ordinal * 20 + slot`: stable as the
clock moves (they depend on the activity's own date, not on its position in the list) and
unique within an account; below 2**53, so JavaScript clients read them exactly."""


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


def activity_is_malformed(account: Account, day: dt.date, slot: int) -> bool:
    """Whether the `slot`-th activity of local date `day` is served broken.

    The index is the activity's sequence number counted from 0001-01-01
    (`day.toordinal() * activities_per_day + slot`), not its position in a listing, so an
    activity stays good or bad as "today" moves on and the history window slides.
    """
    every = account.malformed_activity_every
    index = day.toordinal() * account.activities_per_day + slot
    return every is not None and index % every == 0


def _start_local(account: Account, day: dt.date, slot: int) -> dt.datetime:
    """When the `slot`-th activity of local date `day` starts, in local time (naive)."""
    window = 17 * 3600 // account.activities_per_day  # local 05:00-22:00 split into slots
    draw = Draw(account.username, day, slot)
    start_second = 5 * 3600 + slot * window + draw.integer("start", 0, window // 2)
    return dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=start_second)


def _activity(account: Account, profile: Profile, day: dt.date, slot: int) -> dict[str, Any]:
    """The `slot`-th activity (0 = earliest) of local date `day`, as Garmin lists it."""
    draw = Draw(account.username, day, slot)
    sport = draw.choice("sport", _SPORTS)
    start_local = _start_local(account, day, slot)
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
        "beginTimestamp": epoch_ms(start_gmt),
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


def history_start(account: Account, today: dt.date) -> dt.date:
    return today - dt.timedelta(days=account.history_days)


def _day_and_slot(account: Account, last: dt.date, position: int) -> tuple[dt.date, int]:
    """The local date and slot at `position` of a newest-first list that ends on `last`."""
    per_day = account.activities_per_day
    return last - dt.timedelta(days=position // per_day), per_day - 1 - position % per_day


def _not_started(
    account: Account, profile: Profile, last: dt.date, total: int, now: dt.datetime
) -> int:
    """How many of the newest `total` positions start after `now` (a prefix, see above)."""
    now_utc = now.astimezone(dt.UTC).replace(tzinfo=None)
    count = 0
    while count < total:
        day, slot = _day_and_slot(account, last, count)
        if _start_local(account, day, slot) - profile.offset <= now_utc:
            break
        count += 1
    return count


def activities_between(
    account: Account,
    first: dt.date,
    last: dt.date,
    start: int,
    limit: int | None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Newest first, positions [start, start+limit) of the activities on local dates first..last
    that have started by `now` (an aware datetime; None: all of them).

    Only the requested page is generated: paging through ten years stays cheap.
    """
    per_day = account.activities_per_day
    total = ((last - first).days + 1) * per_day if first <= last else 0
    profile = account_profile(account)
    skipped = _not_started(account, profile, last, total, now) if now is not None else 0
    stop = total if limit is None else min(total, skipped + start + limit)
    page = []
    for position in range(skipped + start, stop):
        day, slot = _day_and_slot(account, last, position)
        page.append(_activity(account, profile, day, slot))
    return page


def expected_activities(account: Account, at: dt.date) -> list[dict[str, Any]]:
    """Every activity the sandbox lists for `account`, newest first, at moment `at`.

    `at` is an aware datetime (the sandbox clock's reading: today's activities that have
    started by then) or a date (every activity up to and including that local date, as
    listed once all of them have started). Malformed ones are included (they lack
    `activityId`), each exactly as the activity list endpoint serves it: what a sync test
    compares its database with.
    """
    if isinstance(at, dt.datetime):
        if at.tzinfo is None:
            raise ValueError("expected_activities needs an aware datetime (or a date)")
        today = at.astimezone(dt.UTC).date()
        return activities_between(account, history_start(account, today), today, 0, None, at)
    return activities_between(account, history_start(account, at), at, 0, None)
