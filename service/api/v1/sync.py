"""`/api/v1/garmin/sync`, `/sync/jobs`, `/activities` and `/health/daily`."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from service.api.cursors import CURSORS, query_cursor
from service.api.middleware import USER_ID
from service.api.parsing import read_json_object
from service.errors import BadRequest, ValidationFailed
from service.keys import SYNC
from service.models import Activity, DailyHealth, SyncJob, SyncKind

routes = web.RouteTableDef()
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
JOBS_SCOPE = "sync-jobs"
ACTIVITIES_SCOPE = "activities"


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value else None


def query_limit(request: web.Request) -> int:
    text = request.query.get("limit", str(DEFAULT_LIMIT))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer from 1 to {MAX_LIMIT}.")
    return int(text)


def query_date(request: web.Request, name: str) -> date | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD).") from None


def query_datetime(request: web.Request, name: str) -> datetime | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
        # normalised to UTC: SQLite compares the stored ISO text, where "+02:00" sorts wrongly
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset moving it past year 9999
        raise BadRequest(f"{name} must be an ISO 8601 date or date-time.") from None


def job_body(job: SyncJob) -> dict[str, Any]:
    return {
        "id": job.id, "kind": job.kind.value, "trigger": job.trigger.value,
        "status": job.status.value, "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at),
        "items_fetched": job.items_fetched, "items_upserted": job.items_upserted,
        "items_skipped": job.items_skipped, "error": job.error,
    }


def activity_body(activity: Activity) -> dict[str, Any]:
    return {
        "garmin_activity_id": activity.garmin_activity_id, "type": activity.activity_type,
        "name": activity.name, "start_time_utc": _iso(activity.start_time_utc),
        "start_time_local": activity.start_time_local,
        "duration_seconds": activity.duration_seconds,
        "distance_meters": activity.distance_meters, "calories": activity.calories,
        "average_hr": activity.average_hr, "max_hr": activity.max_hr,
        "elevation_gain": activity.elevation_gain, "updated_at": _iso(activity.updated_at),
    }


def day_body(day: DailyHealth) -> dict[str, Any]:
    return {
        "date": _iso(day.calendar_date), "steps": day.steps, "resting_hr": day.resting_hr,
        "sleep_seconds": day.sleep_seconds, "sleep_score": day.sleep_score,
        "average_stress": day.average_stress, "body_battery_high": day.body_battery_high,
        "body_battery_low": day.body_battery_low, "hrv_last_night": day.hrv_last_night,
        "updated_at": _iso(day.updated_at),
    }


async def _kinds(request: web.Request) -> list[SyncKind]:
    # `kinds` defaults to both, so a request without a body is a sync of everything
    body = await read_json_object(request, empty_means_defaults=True)
    extra = [name for name in body if name != "kinds"]
    kinds = body.get("kinds", [kind.value for kind in SyncKind])
    valid = {kind.value for kind in SyncKind}
    if extra:
        raise ValidationFailed("unknown field", [{"field": str(name)[:64],
                                                  "problem": "unknown field"}
                                                 for name in extra])
    if (not isinstance(kinds, list) or not kinds
            or not all(isinstance(kind, str) and kind in valid for kind in kinds)):
        raise ValidationFailed("kinds: must be a non-empty list of activities, health",
                               [{"field": "kinds",
                                 "problem": "must be a non-empty list of activities, health"}])
    return [SyncKind(kind) for kind in dict.fromkeys(kinds)]


@routes.post("/api/v1/garmin/sync")
async def start_sync(request: web.Request) -> web.Response:
    kinds = await _kinds(request)
    jobs = await request.app[SYNC].request_sync(request[USER_ID], kinds)
    return web.json_response({"jobs": [job_body(job) for job in jobs]}, status=202)


@routes.get("/api/v1/garmin/sync/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    user_id = request[USER_ID]
    limit = query_limit(request)
    after = query_cursor(request, JOBS_SCOPE, user_id, (int,))
    page = await request.app[SYNC].jobs(user_id, limit, after[0] if after else None)
    last = page.items[-1] if page.more and page.items else None
    return web.json_response({
        "items": [job_body(job) for job in page.items],
        "next_cursor": request.app[CURSORS].issue(JOBS_SCOPE, user_id, last.id) if last
        else None})


@routes.get("/api/v1/garmin/activities")
async def list_activities(request: web.Request) -> web.Response:
    kind = request.query.get("type")
    if kind is not None and not 1 <= len(kind) <= 64:
        raise BadRequest("type must be 1 to 64 characters.")
    user_id = request[USER_ID]
    since, until = query_datetime(request, "since"), query_datetime(request, "until")
    limit = query_limit(request)
    after = query_cursor(request, ACTIVITIES_SCOPE, user_id, (datetime, int))
    page = await request.app[SYNC].activities(user_id, since, until, kind, limit,
                                              (after[0], after[1]) if after else None)
    last = page.items[-1] if page.more and page.items else None
    return web.json_response({
        "items": [activity_body(item) for item in page.items],
        "next_cursor": request.app[CURSORS].issue(
            ACTIVITIES_SCOPE, user_id, last.start_time_utc, last.id) if last else None})


@routes.get("/api/v1/garmin/health/daily")
async def list_daily_health(request: web.Request) -> web.Response:
    first = query_date(request, "from")
    last = query_date(request, "to")
    if first is None or last is None:
        raise BadRequest("from and to are required dates (YYYY-MM-DD).")
    days = await request.app[SYNC].daily_health(request[USER_ID], first, last)
    return web.json_response({"items": [day_body(day) for day in days]})
