"""The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`.

Request schemas come from the same field definitions the handlers validate with, and a
test compares the documented operations with the app's router, so the two cannot drift.
Each operation lists the problem classes it can answer with (`service.errors`); their
statuses and docstrings make its error responses.
"""

from __future__ import annotations

import inspect
from typing import Any

from aiohttp import web

from service import errors
from service.api.parsing import object_schema
from service.api.v1.auth import LOGIN_FIELDS, MFA_FIELDS
from service.models import SessionStatus

PROBLEM = {"$ref": "#/components/schemas/Problem"}
DATETIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}

Problems = tuple[type[errors.Problem], ...]


def _problems(*kinds: type[errors.Problem]) -> dict[str, Any]:
    """One response per status, described by the docstrings of the classes that answer it."""
    by_status: dict[int, list[str]] = {}
    for kind in kinds:
        by_status.setdefault(kind.status, []).append(inspect.getdoc(kind) or kind.title)
    return {str(status): {"description": " Or: ".join(descriptions),
                          "content": {errors.PROBLEM_CONTENT_TYPE: {"schema": PROBLEM}}}
            for status, descriptions in sorted(by_status.items())}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


COMMON_ERRORS: Problems = (errors.BadRequest, errors.InvalidUserId, errors.Unauthorized)
BODY_ERRORS: Problems = (errors.ValidationFailed, errors.PayloadTooLarge,
                         errors.UnsupportedMediaType)
GARMIN_ERRORS: Problems = (errors.GarminThrottled, errors.GarminBadResponse,
                           errors.GarminFailed, errors.GarminUnavailableProblem)

STATUS_SCHEMA = {
    "type": "object",
    "required": ["status", "checked", "last_validated", "connected_at", "mfa_pending",
                 "mfa_expires_at", "reason", "engine", "sync"],
    "properties": {
        "status": {"enum": [status.value for status in SessionStatus]},
        "checked": {"enum": ["live", "cached", "unavailable", "none"]},
        "last_validated": DATETIME_OR_NULL,
        "connected_at": DATETIME_OR_NULL,
        "mfa_pending": {"type": "boolean"},
        "mfa_expires_at": DATETIME_OR_NULL,
        "reason": {"type": ["string", "null"]},
        "engine": {
            "enum": ["di", "garth", None],
            "description": "The engine of the stored session (a VALID status), else of the "
                           "pending login (MFA_PENDING); null when there is neither. A stored "
                           "session is always used by the engine that made it.",
        },
        "sync": {
            "type": "object",
            "description": "Per kind (activities, health): where its sync stands.",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "last_success_at": DATETIME_OR_NULL, "next_sync_at": DATETIME_OR_NULL,
                    "backoff_until": DATETIME_OR_NULL,
                    "last_error": {"type": ["string", "null"]},
                },
            },
        },
    },
}

LOGIN_RESULT = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"enum": ["SUCCESS", "MFA_REQUIRED"]},
        "mfa_method": {"type": "string"},
        "expires_at": {"type": "string", "format": "date-time"},
    },
}

USER_HEADER = {
    "name": "X-User-Id", "in": "header", "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,64}$"},
    "description": "The user whose Garmin session this call reads or writes.",
}


JOB_SCHEMA = {
    "type": "object",
    "required": ["id", "kind", "trigger", "status"],
    "properties": {
        "id": {"type": "integer"},
        "kind": {"enum": ["activities", "health"]},
        "trigger": {"enum": ["scheduled", "manual"]},
        "status": {"enum": ["PENDING", "RUNNING", "SUCCESS", "FAILED", "AUTH_EXPIRED",
                            "RATE_LIMITED", "SKIPPED"]},
        "created_at": DATETIME_OR_NULL, "started_at": DATETIME_OR_NULL,
        "finished_at": DATETIME_OR_NULL,
        "items_fetched": {"type": "integer"}, "items_upserted": {"type": "integer"},
        "items_skipped": {"type": "integer"}, "error": {"type": ["string", "null"]},
    },
}
SYNC_REQUEST = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"kinds": {"type": "array", "minItems": 1,
                             "items": {"enum": ["activities", "health"]},
                             "description": "Default: both."}},
}
PAGING = [
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
    {"name": "cursor", "in": "query", "required": False,
     "schema": {"type": "string", "minLength": 1, "maxLength": 200},
     "description": "`next_cursor` of the previous page."},
]


def _page(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["items", "next_cursor"],
            "properties": {"items": {"type": "array", "items": item},
                           "next_cursor": {"type": ["string", "null"]}}}


def _query(name: str, fmt: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required,
            "schema": {"type": "string", "format": fmt}}


def _instant(name: str) -> dict[str, Any]:
    """`since`/`until`: a date-time (no offset means UTC) or a date (its midnight UTC)."""
    return {"name": name, "in": "query", "required": False,
            "description": "ISO 8601 date-time (UTC when no offset is given) or date.",
            "schema": {"type": "string", "anyOf": [{"format": "date-time"},
                                                   {"format": "date"}]}}


def _operation(summary: str, responses: dict[str, Any], raises: Problems = (),
               **extra: Any) -> dict[str, Any]:
    """`raises`: the problems the operation answers with, beside those every one can."""
    return {"summary": summary, "parameters": [USER_HEADER], "security": [{"apiKey": []}],
            "responses": {**responses, **_problems(*raises, *COMMON_ERRORS)}, **extra}


def _body(fields: Any) -> dict[str, Any]:
    return {"required": True,
            "content": {"application/json": {"schema": object_schema(fields)}}}


def build_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "garmin-sync", "version": "1"},
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {
                "type": "object",
                "required": ["type", "title", "status", "detail"],
                "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                               "status": {"type": "integer"}, "detail": {"type": "string"}},
            }},
        },
        "paths": {
            "/api/v1/garmin/session/login": {"post": _operation(
                "Log in to Garmin and store the session (or start MFA).",
                {"200": _json("Logged in, or MFA required.", LOGIN_RESULT)},
                (errors.UserBusy, errors.WriteConflict, errors.InvalidGarminCredentials,
                 errors.LoginCooldown, *BODY_ERRORS, *GARMIN_ERRORS),
                requestBody=_body(LOGIN_FIELDS),
            )},
            "/api/v1/garmin/session/mfa": {"post": _operation(
                "Finish a pending login with the MFA code.",
                {"200": _json("Logged in.", LOGIN_RESULT)},
                (errors.NoPendingMfa, errors.UserBusy, errors.WriteConflict, errors.MfaExpired,
                 errors.MfaUnreadable, errors.WrongMfaCode, *BODY_ERRORS, *GARMIN_ERRORS),
                requestBody=_body(MFA_FIELDS),
            )},
            "/api/v1/garmin/session/status": {"get": _operation(
                "The session's status; cached while the last validation is fresh.",
                {"200": _json("Status.", STATUS_SCHEMA)},
                parameters=[USER_HEADER, {"name": "refresh", "in": "query", "required": False,
                                          "schema": {"type": "boolean"}}],
            )},
            "/api/v1/garmin/sync": {"post": _operation(
                "Start a manual sync of the user's activities and/or health data now.",
                {"202": _json("Jobs created.", {
                    "type": "object", "required": ["jobs"],
                    "properties": {"jobs": {"type": "array", "items": JOB_SCHEMA}}})},
                (errors.NoSession, errors.UserBusy, errors.GarminThrottled, *BODY_ERRORS),
                requestBody={"required": True,
                             "content": {"application/json": {"schema": SYNC_REQUEST}}},
            )},
            "/api/v1/garmin/sync/jobs": {"get": _operation(
                "The user's sync jobs, newest first.",
                {"200": _json("A page of jobs.", _page(JOB_SCHEMA))},
                parameters=[USER_HEADER, *PAGING],
            )},
            "/api/v1/garmin/activities": {"get": _operation(
                "Synced activities, newest first.",
                {"200": _json("A page of activities.", _page({"type": "object"}))},
                parameters=[USER_HEADER, _instant("since"), _instant("until"),
                            {"name": "type", "in": "query", "required": False,
                             "schema": {"type": "string", "minLength": 1, "maxLength": 64}},
                            *PAGING],
            )},
            "/api/v1/garmin/health/daily": {"get": _operation(
                "Synced daily health summaries between two dates (at most 366 days).",
                {"200": _json("Days in order.", {
                    "type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array", "items": {"type": "object"}}}})},
                parameters=[USER_HEADER, _query("from", "date", True), _query("to", "date", True)],
            )},
            "/api/v1/garmin/session": {"delete": _operation(
                "Disconnect: delete the stored session and MFA state.",
                {"204": {"description": "Deleted (or there was nothing)."}},
                (errors.UserBusy,),
            )},
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_spec())
