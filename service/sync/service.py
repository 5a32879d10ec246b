"""The use cases behind `/api/v1/garmin/sync`, the data listings and the sync part of status."""

from __future__ import annotations

import base64
import binascii
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
    items: list[T]
    next_cursor: str | None


def _encode(*parts: object) -> str:
    raw = "|".join(str(part) for part in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str, count: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = base64.urlsafe_b64decode(padded.encode()).decode().split("|")
    except (binascii.Error, UnicodeError, ValueError):
        raise BadRequest("The cursor is not one this API returned.") from None
    if len(parts) != count:
        raise BadRequest("The cursor is not one this API returned.")
    return parts


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

    async def jobs(self, user_id: str, limit: int, cursor: str | None) -> Page[SyncJob]:
        before = None
        if cursor:
            text = _decode(cursor, 1)[0]
            if not (text.isascii() and text.isdigit()):
                raise BadRequest("The cursor is not one this API returned.")
            before = int(text)
        rows = await store.jobs_page(user_id, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(rows, _encode(rows[-1].id) if more and rows else None)

    async def activities(self, user_id: str, since: datetime | None, until: datetime | None,
                         kind: str | None, limit: int, cursor: str | None) -> Page[Activity]:
        query = Activity.filter(user_id=user_id)
        if since:
            query = query.filter(start_time_utc__gte=since)
        if until:
            query = query.filter(start_time_utc__lt=until)
        if kind:
            query = query.filter(activity_type=kind)
        if cursor:
            at_text, id_text = _decode(cursor, 2)
            try:
                at, last_id = datetime.fromisoformat(at_text), int(id_text)
            except ValueError:
                raise BadRequest("The cursor is not one this API returned.") from None
            query = query.filter(Q(start_time_utc__lt=at) | Q(start_time_utc=at, id__lt=last_id))
        rows = await query.order_by("-start_time_utc", "-id").limit(limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (_encode(rows[-1].start_time_utc.isoformat(), rows[-1].id)
                       if more and rows else None)
        return Page(rows, next_cursor)

    async def daily_health(self, user_id: str, first: date, last: date) -> list[DailyHealth]:
        if last < first:
            raise BadRequest("`to` must not be before `from`.")
        if (last - first).days >= MAX_HEALTH_RANGE_DAYS:
            raise BadRequest(f"Ask for at most {MAX_HEALTH_RANGE_DAYS} days at once.")
        return await DailyHealth.filter(
            user_id=user_id, calendar_date__gte=first, calendar_date__lte=last
        ).order_by("calendar_date")
