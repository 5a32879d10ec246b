"""Garmin Connect's data endpoints: which path is which family, the query checks, and the
answer for the token's account (activities from `activities.py`, wellness from `wellness.py`).

Generated, not stored, so any account has years of history at no cost, and tests can compute
what the sandbox holds (`expected_activities`, `generated_day`) instead of keeping fixtures.
Pure Python like the model: refusals are SandboxError (400/403) and `connectapi.py` turns
answers into HTTP. The field names are Garmin's; only a useful subset of each payload is
produced.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .accounts import Account
from .activities import activities_between, history_start
from .errors import SandboxError
from .wellness import generated_day

ACTIVITY_PAGE_DEFAULT: Final = 20
ACTIVITY_PAGE_MAX: Final = 100
BODY_BATTERY_MAX_DAYS: Final = 31

_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_UINT: Final = re.compile(r"\d{1,9}")


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
    first = max(history_start(account, call.today), start_date or dt.date.min)
    last = min(call.today, end_date or dt.date.max)
    return DataAnswer(activities_between(account, first, last, start, limit, call.now))


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
