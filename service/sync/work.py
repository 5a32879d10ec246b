"""What one sync job fetches and stores: the span of days it covers, the Garmin calls that
fetch it, and the rows parsed from Garmin's answer (malformed items counted, not stored)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from service.garmin import SessionCalls, fetch_activities, fetch_days
from service.models import SyncKind
from service.sync.parsing import MalformedItem, activity_fields, day_fields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    first_day: date
    last_day: date

    def days(self) -> list[date]:
        span = (self.last_day - self.first_day).days
        return [self.first_day + timedelta(days=offset) for offset in range(span + 1)]


async def fetch_activities_of(api: SessionCalls, plan: Plan, page_size: int) -> list[Any]:
    # Garmin filters by local date: one day past today covers users ahead of UTC.
    return await fetch_activities(api, plan.first_day, plan.last_day + timedelta(days=1),
                                  page_size)


async def fetch_days_of(api: SessionCalls, plan: Plan) -> dict[date, dict[str, Any]]:
    return await fetch_days(api, plan.days())


def parse(kind: SyncKind, raw: Any) -> tuple[list[dict[str, Any]], int]:
    """Rows to upsert and how many items were skipped as malformed (deduplicated by key)."""
    rows: dict[Any, dict[str, Any]] = {}
    skipped = 0
    items: list[tuple[Any, Any]] = list(raw.items() if kind == SyncKind.HEALTH
                                        else enumerate(raw))
    for key, item in items:
        try:
            fields = (day_fields(key, item) if isinstance(key, date)
                      else activity_fields(item))
        except MalformedItem as exc:
            skipped += 1
            log.debug("skipped a malformed %s item: %s", kind.value, exc)
            continue
        natural = fields.get("garmin_activity_id", fields.get("calendar_date"))
        rows[natural] = fields
    return list(rows.values()), skipped
