"""Garmin Connect data endpoints, as a sync job reads them through a loaded session.

Each call runs in the gateway's thread pool on that user's own client (every call carries
the user's own token). A job's independent calls run at once, as garth's own range reads
do: the days of a backfill and a day's three sources; activity pages follow each other,
since only a short page says there is no next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from datetime import date
from typing import Any, TypeVar

from service.garmin.calls import SessionCalls
from service.garmin.errors import GarminProtocolError

T = TypeVar("T")

ACTIVITY_SEARCH = "/activitylist-service/activities/search/activities"
PROFILE = "/userprofile-service/socialProfile"
MAX_PAGES = 1000


async def fetch_activities(
    api: SessionCalls, start: date, end: date, page_size: int
) -> list[Any]:
    """Every activity summary between two local dates, following Garmin's start/limit pages.

    A page shorter than `page_size` is the last one. Items are returned raw: one malformed
    item must not cost the whole page, so validation happens per item later.
    """
    items: list[Any] = []
    for page in range(MAX_PAGES):
        batch = await api.get(ACTIVITY_SEARCH, params={
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


async def all_of(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Every result in order. The first failure cancels the rest and is raised as is (one
    Garmin error to classify, not a group), so a 429 or a rejection stops the user's other
    calls instead of sending them."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


async def profile(api: SessionCalls) -> dict[str, Any]:
    """The user's social profile: the cheapest authenticated call, which also proves a
    session still works."""
    answer = await api.get(PROFILE)
    if not isinstance(answer, dict):
        raise GarminProtocolError("Garmin sent a profile of an unexpected shape")
    return answer


async def display_name(api: SessionCalls) -> str:
    """Several wellness endpoints are addressed by the user's display name."""
    name = (await profile(api)).get("displayName")
    if not isinstance(name, str):
        raise GarminProtocolError("Garmin sent a profile without a display name")
    return name


async def fetch_day(api: SessionCalls, name: str, day: date) -> dict[str, Any]:
    """The raw sources of one day's health summary: daily summary, sleep, HRV."""
    iso = day.isoformat()
    summary, sleep, hrv = await all_of((
        api.get(f"/usersummary-service/usersummary/daily/{name}",
                params={"calendarDate": iso}),
        api.get(f"/wellness-service/wellness/dailySleepData/{name}",
                params={"date": iso, "nonSleepBufferMinutes": 60}),
        api.get(f"/hrv-service/hrv/{iso}"),
    ))
    return {"summary": summary, "sleep": sleep, "hrv": hrv}


async def fetch_days(api: SessionCalls, days: list[date]) -> dict[date, dict[str, Any]]:
    """Every day's sources, the days fetched at once (bounded by the job's `parallel`)."""
    name = await display_name(api)
    return dict(zip(days, await all_of(fetch_day(api, name, day) for day in days),
                    strict=True))
