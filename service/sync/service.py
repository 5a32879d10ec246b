"""The use cases behind `/api/v1/garmin/sync`, the data listings and the sync part of status."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Generic, TypeVar

from tortoise.expressions import Q

from service.clock import Now, utcnow
from service.errors import BadRequest, GarminThrottled, NoSession, UserBusy
from service.models import (
    Activity,
    DailyHealth,
    JobTrigger,
    SessionStatus,
    SyncJob,
    SyncKind,
)
from service.store import sessions as session_store
from service.store import sync as store
from service.store.leases import UserLeases
from service.sync.scheduler import SyncScheduler

MAX_HEALTH_RANGE_DAYS = 366
T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """Up to `limit` items; `more` when others follow the last one."""

    items: list[T]
    more: bool


def _page(rows: list[T], limit: int) -> Page[T]:
    return Page(rows[:limit], len(rows) > limit)


class SyncService:
    def __init__(self, scheduler: SyncScheduler, leases: UserLeases,
                 clock: Now = utcnow) -> None:
        self._scheduler = scheduler
        self._leases = leases
        self._clock = clock

    async def request_sync(self, user_id: str, kinds: Sequence[SyncKind]) -> list[SyncJob]:
        """Start a manual sync now; 409 when the user has no session or is busy, 429 while
        Garmin's throttling of the user (a 429 a job met) lasts."""
        row = await session_store.load(user_id)
        if row is None or not row.session_data:
            expired = row is not None and row.status == SessionStatus.EXPIRED
            raise NoSession(expired)
        now = self._clock()
        throttled = await store.throttled_until(user_id, now)
        if throttled is not None:
            wait = max(1, math.ceil((throttled - now).total_seconds()))
            raise GarminThrottled(
                wait, "Garmin throttled this account; syncs wait until its block ends.")
        lease = await self._leases.acquire(user_id, "sync")
        if lease is None:
            raise UserBusy("A sync, login or MFA for this user is running; try again shortly.")
        try:
            await store.resume_cursors_if_missing(user_id)
            jobs = [await store.create_job(user_id, kind, JobTrigger.MANUAL) for kind in kinds]
        except BaseException:
            await self._leases.release(lease)
            raise
        self._scheduler.spawn(jobs, lease)
        return jobs

    async def jobs(self, user_id: str, limit: int, before_id: int | None) -> Page[SyncJob]:
        """Newest first; `before_id`: the id of the previous page's last job."""
        return _page(await store.jobs_page(user_id, limit + 1, before_id), limit)

    async def activities(self, user_id: str, since: datetime | None, until: datetime | None,
                         kind: str | None, limit: int,
                         after: tuple[datetime, int] | None) -> Page[Activity]:
        """Newest first; `after`: (start time, id) of the previous page's last activity."""
        query = Activity.filter(user_id=user_id)
        if since:
            query = query.filter(start_time_utc__gte=since)
        if until:
            query = query.filter(start_time_utc__lt=until)
        if kind:
            query = query.filter(activity_type=kind)
        if after is not None:
            at, last_id = after
            query = query.filter(Q(start_time_utc__lt=at) | Q(start_time_utc=at, id__lt=last_id))
        return _page(await query.order_by("-start_time_utc", "-id").limit(limit + 1), limit)

    async def daily_health(self, user_id: str, first: date, last: date) -> list[DailyHealth]:
        if last < first:
            raise BadRequest("`to` must not be before `from`.")
        if (last - first).days >= MAX_HEALTH_RANGE_DAYS:
            raise BadRequest(f"Ask for at most {MAX_HEALTH_RANGE_DAYS} days at once.")
        return await DailyHealth.filter(
            user_id=user_id, calendar_date__gte=first, calendar_date__lte=last
        ).order_by("calendar_date")
