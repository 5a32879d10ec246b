"""`/api/v1/garmin/sync`, `/sync/jobs`, `/activities` and `/health/daily`."""

from __future__ import annotations

from datetime import UTC, date, datetime

from aiohttp import web

from service.api.cursors import CURSORS, query_cursor
from service.api.middleware import USER_ID
from service.api.parsing import read_json_object, text_problem
from service.api.shapes import (
    DATE,
    DATETIME,
    DATETIME_OR_NULL,
    INTEGER,
    INTEGER_OR_NULL,
    NUMBER_OR_NULL,
    STRING_OR_NULL,
    Out,
    Shape,
    enum_of,
)
from service.errors import BadRequest, ValidationFailed
from service.keys import SYNC
from service.models import JobStatus, JobTrigger, SyncKind

routes = web.RouteTableDef()
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
JOBS_SCOPE = "sync-jobs"
ACTIVITIES_SCOPE = "activities"


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


JOB = Shape(
    Out("id", INTEGER), Out("kind", enum_of(SyncKind)), Out("trigger", enum_of(JobTrigger)),
    Out("status", enum_of(JobStatus)), Out("created_at", DATETIME_OR_NULL),
    Out("started_at", DATETIME_OR_NULL), Out("finished_at", DATETIME_OR_NULL),
    Out("items_fetched", INTEGER), Out("items_upserted", INTEGER),
    Out("items_skipped", INTEGER), Out("error", STRING_OR_NULL),
)
ACTIVITY = Shape(
    Out("garmin_activity_id", INTEGER),
    Out("type", STRING_OR_NULL, lambda activity: activity.activity_type),
    Out("name", STRING_OR_NULL), Out("start_time_utc", DATETIME),
    Out("start_time_local", {**STRING_OR_NULL, "description": "Wall-clock time where it "
                             "started (YYYY-MM-DDTHH:MM:SS, no offset)."}),
    Out("duration_seconds", NUMBER_OR_NULL), Out("distance_meters", NUMBER_OR_NULL),
    Out("calories", NUMBER_OR_NULL), Out("average_hr", NUMBER_OR_NULL),
    Out("max_hr", NUMBER_OR_NULL), Out("elevation_gain", NUMBER_OR_NULL),
    Out("updated_at", DATETIME),
)
DAY = Shape(
    Out("date", DATE, lambda day: day.calendar_date), Out("steps", INTEGER_OR_NULL),
    Out("resting_hr", INTEGER_OR_NULL), Out("sleep_seconds", INTEGER_OR_NULL),
    Out("sleep_score", INTEGER_OR_NULL), Out("average_stress", INTEGER_OR_NULL),
    Out("body_battery_high", INTEGER_OR_NULL), Out("body_battery_low", INTEGER_OR_NULL),
    Out("hrv_last_night", INTEGER_OR_NULL), Out("updated_at", DATETIME),
)


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
    return web.json_response({"jobs": [JOB.render(job) for job in jobs]}, status=202)


@routes.get("/api/v1/garmin/sync/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    user_id = request[USER_ID]
    limit = query_limit(request)
    after = query_cursor(request, JOBS_SCOPE, (int,))
    page = await request.app[SYNC].jobs(user_id, limit, after[0] if after else None)
    last = page.items[-1] if page.more and page.items else None
    return web.json_response({
        "items": [JOB.render(job) for job in page.items],
        "next_cursor": request.app[CURSORS].issue(JOBS_SCOPE, last.id) if last
        else None})


@routes.get("/api/v1/garmin/activities")
async def list_activities(request: web.Request) -> web.Response:
    kind = request.query.get("type")
    if kind is not None and (not 1 <= len(kind) <= 64 or text_problem(kind)):
        raise BadRequest("type must be 1 to 64 characters, none of them control characters.")
    user_id = request[USER_ID]
    since, until = query_datetime(request, "since"), query_datetime(request, "until")
    limit = query_limit(request)
    after = query_cursor(request, ACTIVITIES_SCOPE, (datetime, int))
    page = await request.app[SYNC].activities(user_id, since, until, kind, limit,
                                              (after[0], after[1]) if after else None)
    last = page.items[-1] if page.more and page.items else None
    return web.json_response({
        "items": [ACTIVITY.render(item) for item in page.items],
        "next_cursor": request.app[CURSORS].issue(
            ACTIVITIES_SCOPE, last.start_time_utc, last.id) if last else None})


@routes.get("/api/v1/garmin/health/daily")
async def list_daily_health(request: web.Request) -> web.Response:
    first = query_date(request, "from")
    last = query_date(request, "to")
    if first is None or last is None:
        raise BadRequest("from and to are required dates (YYYY-MM-DD).")
    days = await request.app[SYNC].daily_health(request[USER_ID], first, last)
    return web.json_response({"items": [DAY.render(day) for day in days]})
