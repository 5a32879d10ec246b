"""The event catalogue: what each webhook says, built in one place, described by one schema.

Every payload has the Standard Webhooks shape `{"type", "timestamp", "data"}` with
`data.user_id` always set. Builders take only the facts an event reports (ids, counts,
dates, a reason); nothing secret is ever passed in, and `Event` refuses data keys that look
like a credential as a second line of defence. `SCHEMAS` is the JSON Schema of every
payload, ready for the OpenAPI document's `webhooks` section.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

SESSION_CONNECTED = "session.connected"
SESSION_EXPIRED = "session.expired"
SESSION_DISCONNECTED = "session.disconnected"
ACTIVITIES_SYNCED = "activities.synced"
HEALTH_SYNCED = "health.synced"
SYNC_FAILING = "sync.failing"
SYNC_RECOVERED = "sync.recovered"
EVENT_TYPES = (SESSION_CONNECTED, SESSION_EXPIRED, SESSION_DISCONNECTED, ACTIVITIES_SYNCED,
               HEALTH_SYNCED, SYNC_FAILING, SYNC_RECOVERED)
SYNC_KINDS = ("activities", "health")
MAX_REASON_LENGTH = 200

_SECRET_KEY = re.compile(r"token|password|secret|code|cookie|session_data|credential",
                         re.IGNORECASE)


class UnsafePayload(ValueError):
    """Event data carried a key that names a credential."""


@dataclass(frozen=True)
class Event:
    type: str
    user_id: str
    timestamp: datetime
    data: dict[str, Any]

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {self.type!r}")
        for key in self.data:
            if _SECRET_KEY.search(key):
                raise UnsafePayload(f"event data key {key!r} looks like a credential")

    def payload(self) -> dict[str, Any]:
        return {"type": self.type, "timestamp": _iso(self.timestamp),
                "data": {"user_id": self.user_id, **self.data}}

    def body(self) -> str:
        """The JSON sent (compact, keys in a fixed order): stored once, signed as it is."""
        return json.dumps(self.payload(), separators=(",", ":"), ensure_ascii=False)


def _iso(moment: datetime) -> str:
    """UTC with a `Z`, to the millisecond."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- builders ---------------------------------------------------------------------------


def session_connected(user_id: str, at: datetime, engine: str | None = None) -> Event:
    data: dict[str, Any] = {"connected_at": _iso(at)}
    if engine:
        data["engine"] = engine
    return Event(SESSION_CONNECTED, user_id, at, data)


def session_expired(user_id: str, at: datetime, reason: str) -> Event:
    return Event(SESSION_EXPIRED, user_id, at, {"reason": reason[:MAX_REASON_LENGTH]})


def session_disconnected(user_id: str, at: datetime) -> Event:
    return Event(SESSION_DISCONNECTED, user_id, at, {})


def activities_synced(user_id: str, at: datetime, job_id: int, inserted: int, updated: int,
                      activity_ids: Sequence[int], max_ids: int) -> Event | None:
    """None when the job changed nothing. At most `max_ids` ids (the newest, by id order as
    given); `activity_ids_truncated` says whether some were left out."""
    if inserted + updated <= 0:
        return None
    ids = list(activity_ids)
    return Event(ACTIVITIES_SYNCED, user_id, at, {
        "job_id": job_id, "inserted": inserted, "updated": updated,
        "activity_ids": ids[:max_ids], "activity_ids_truncated": len(ids) > max_ids,
    })


def health_synced(user_id: str, at: datetime, job_id: int, dates: Sequence[date]) -> Event | None:
    """None when the job changed no day."""
    if not dates:
        return None
    return Event(HEALTH_SYNCED, user_id, at, {
        "job_id": job_id, "dates": sorted(day.isoformat() for day in set(dates)),
    })


def sync_failing(user_id: str, at: datetime, kind: str, failures: int, job_id: int) -> Event:
    return Event(SYNC_FAILING, user_id, at, {
        "kind": kind, "consecutive_failures": failures, "job_id": job_id,
    })


def sync_recovered(user_id: str, at: datetime, kind: str, job_id: int) -> Event:
    return Event(SYNC_RECOVERED, user_id, at, {"kind": kind, "job_id": job_id})


# --- schema -----------------------------------------------------------------------------

_USER_ID = {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,64}$"}
_JOB_ID = {"type": "integer", "minimum": 1}
_KIND = {"type": "string", "enum": list(SYNC_KINDS)}
_DATE_TIME = {"type": "string", "format": "date-time"}

_DATA: dict[str, tuple[dict[str, Any], list[str]]] = {
    SESSION_CONNECTED: ({"connected_at": _DATE_TIME,
                         "engine": {"type": "string", "maxLength": 64}}, ["connected_at"]),
    SESSION_EXPIRED: ({"reason": {"type": "string", "maxLength": MAX_REASON_LENGTH}},
                      ["reason"]),
    SESSION_DISCONNECTED: ({}, []),
    ACTIVITIES_SYNCED: ({
        "job_id": _JOB_ID,
        "inserted": {"type": "integer", "minimum": 0},
        "updated": {"type": "integer", "minimum": 0},
        "activity_ids": {"type": "array", "items": {"type": "integer"}},
        "activity_ids_truncated": {"type": "boolean"},
    }, ["job_id", "inserted", "updated", "activity_ids", "activity_ids_truncated"]),
    HEALTH_SYNCED: ({
        "job_id": _JOB_ID,
        "dates": {"type": "array", "minItems": 1,
                  "items": {"type": "string", "format": "date"}},
    }, ["job_id", "dates"]),
    SYNC_FAILING: ({"kind": _KIND, "consecutive_failures": {"type": "integer", "minimum": 1},
                    "job_id": _JOB_ID}, ["kind", "consecutive_failures", "job_id"]),
    SYNC_RECOVERED: ({"kind": _KIND, "job_id": _JOB_ID}, ["kind", "job_id"]),
}


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one event type's payload (the body of its POST)."""
    properties, required = _DATA[event_type]
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"type": "string", "const": event_type},
            "timestamp": _DATE_TIME,
            "data": {
                "type": "object",
                "additionalProperties": False,
                "required": ["user_id", *required],
                "properties": {"user_id": _USER_ID, **properties},
            },
        },
    }


SCHEMAS: dict[str, dict[str, Any]] = {name: event_schema(name) for name in EVENT_TYPES}
# any payload: the one whose `type` it names
PAYLOAD_SCHEMA: dict[str, Any] = {"oneOf": [SCHEMAS[name] for name in EVENT_TYPES]}
