"""Garmin Connect data endpoints, as a sync job reads them through a loaded session.

These run inside the gateway's thread pool (one job's calls one after another), on the
`GarminApi` of a fresh per-user client: every call carries that user's own token.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from service.garmin.client import GarminApi
from service.garmin.errors import GarminProtocolError

ACTIVITY_SEARCH = "/activitylist-service/activities/search/activities"
PROFILE = "/userprofile-service/socialProfile"
MAX_PAGES = 1000


def fetch_activities(api: GarminApi, start: date, end: date, page_size: int) -> list[Any]:
    """Every activity summary between two local dates, following Garmin's start/limit pages.

    A page shorter than `page_size` is the last one. Items are returned raw: one malformed
    item must not cost the whole page, so validation happens per item later.
    """
    items: list[Any] = []
    for page in range(MAX_PAGES):
        batch = api.get(ACTIVITY_SEARCH, params={
            "start": page * page_size, "limit": page_size,
            "startDate": start.isoformat(), "endDate": end.isoformat(),
        })
        if batch is None:
            break
        if not isinstance(batch, list):
            raise GarminProtocolError("Garmin sent an activity page that is not a list")
        items.extend(batch)
        if len(batch) < page_size:
            break
    return items


def display_name(api: GarminApi) -> str:
    """Several wellness endpoints are addressed by the user's display name."""
    profile = api.get(PROFILE)
    if not isinstance(profile, dict) or not isinstance(profile.get("displayName"), str):
        raise GarminProtocolError("Garmin sent a profile without a display name")
    return str(profile["displayName"])


def fetch_day(api: GarminApi, name: str, day: date) -> dict[str, Any]:
    """The raw sources of one day's health summary: daily summary, sleep, HRV."""
    iso = day.isoformat()
    return {
        "summary": api.get(f"/usersummary-service/usersummary/daily/{name}",
                           params={"calendarDate": iso}),
        "sleep": api.get(f"/wellness-service/wellness/dailySleepData/{name}",
                         params={"date": iso, "nonSleepBufferMinutes": 60}),
        "hrv": api.get(f"/hrv-service/hrv/{iso}"),
    }
