"""The OpenAPI 3.1 document of `/api/v1`, served at `/api/v1/openapi.json`.

Request schemas come from the same field definitions the handlers validate with, and a
test compares the documented operations with the app's router, so the two cannot drift.
Each operation lists the problem classes it can answer with (`service.errors`); their
statuses and docstrings make its error responses. The `webhooks` section describes the
events POSTed to the configured endpoints, from the schemas the events are built against.
"""

from __future__ import annotations

import inspect
from typing import Any

from aiohttp import web

from service import errors
from service.api.parsing import body_required, object_schema
from service.api.shapes import DATETIME_OR_NULL
from service.api.v1.auth import LOGIN_FIELDS, MFA_FIELDS
from service.api.v1.sync import ACTIVITY, DAY, JOB
from service.models import SessionStatus
from service.models.webhooks import DeliveryStatus
from service.webhooks import events

PROBLEM = {"$ref": "#/components/schemas/Problem"}

Problems = tuple[type[errors.Problem], ...]


RETRY_AFTER = {"description": "Seconds to wait before trying again.",
               "schema": {"type": "integer", "minimum": 0}}


def _problems(*kinds: type[errors.Problem]) -> dict[str, Any]:
    """One response per status, described by the docstrings of the classes that answer it;
    `Retry-After` is declared where one of them sends it (required where all do)."""
    by_status: dict[int, list[type[errors.Problem]]] = {}
    for kind in kinds:
        by_status.setdefault(kind.status, []).append(kind)
    responses: dict[str, Any] = {}
    for status, group in sorted(by_status.items()):
        response: dict[str, Any] = {
            "description": " Or: ".join(inspect.getdoc(kind) or kind.title for kind in group),
            "content": {errors.PROBLEM_CONTENT_TYPE: {"schema": PROBLEM}}}
        senders = [kind.sends_retry_after for kind in group]
        if any(senders):
            response["headers"] = {"Retry-After": {**RETRY_AFTER, "required": all(senders)}}
        responses[str(status)] = response
    return responses


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


COMMON_ERRORS: Problems = (errors.BadRequest, errors.InvalidUserId, errors.Unauthorized,
                           errors.DatabaseUnavailable)
BODY_ERRORS: Problems = (errors.ValidationFailed, errors.PayloadTooLarge,
                         errors.UnsupportedMediaType, errors.UnsupportedContentEncoding)
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
            "description": "The engine of the pending login (MFA_PENDING), of the stored "
                           "session (VALID) or of the session Garmin rejected (EXPIRED); null "
                           "when there is neither (MISSING). A stored session is always used "
                           "by the engine that made it.",
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

MFA_RESULT = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"enum": ["SUCCESS"]}},
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

# RFC 9457 problem details with the extension members `service.errors` classes add
PROBLEM_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path the problem happened on."},
        "errors": {"type": "array", "description": "validation-error: each wrong field.",
                   "items": {"type": "object", "required": ["field", "problem"],
                             "additionalProperties": False,
                             "properties": {"field": {"type": "string"},
                                            "problem": {"type": "string"}}}},
        "retry_after": {"type": "integer", "minimum": 0,
                        "description": "Seconds to wait, as the Retry-After header says."},
        "attempts_remaining": {"type": "integer", "minimum": 0,
                               "description": "mfa-code-invalid: codes left to try."},
        "failing": {"type": "array", "items": {"type": "string"},
                    "description": "not-ready: the dependencies that are not ready."},
    },
}

USER_HEADER = {
    "name": "X-User-Id", "in": "header", "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:@-]{1,64}$"},
    "description": "The user whose Garmin session this call reads or writes.",
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
     "description": "`next_cursor` of the previous page, as it was issued (signed: "
                    "any other value is a 400 bad-cursor problem)."},
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


OPERATOR_ERRORS: Problems = (errors.BadRequest, errors.Unauthorized)
DELIVERY_SCHEMA = {
    "type": "object",
    "required": ["id", "message_id", "type", "user_id", "endpoint", "status", "attempts",
                 "next_attempt_at", "last_status", "last_error", "queued_at", "finished_at"],
    "properties": {
        "id": {"type": "integer"}, "message_id": {"type": "string"},
        "type": {"enum": list(events.EVENT_TYPES)}, "user_id": {"type": "string"},
        "endpoint": {"type": "string"},
        "status": {"enum": [status.value for status in DeliveryStatus]},
        "attempts": {"type": "integer"}, "next_attempt_at": DATETIME_OR_NULL,
        "last_status": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "queued_at": DATETIME_OR_NULL, "finished_at": DATETIME_OR_NULL,
    },
}


def _operator(summary: str, responses: dict[str, Any], raises: Problems = (),
              **extra: Any) -> dict[str, Any]:
    """An operator operation: the API key alone, no `X-User-Id` (it acts on no one user)."""
    return {"summary": summary, "security": [{"apiKey": []}],
            "responses": {**responses, **_problems(*raises, *OPERATOR_ERRORS)}, **extra}


WEBHOOK_HEADERS = [
    {"name": "webhook-id", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "The event's id: the same on every retry; deduplicate on it."},
    {"name": "webhook-timestamp", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^[0-9]+$"},
     "description": "Unix seconds when this attempt was sent."},
    {"name": "webhook-signature", "in": "header", "required": True,
     "schema": {"type": "string"},
     "description": "`v1,<base64 HMAC-SHA256 of id.timestamp.body>` per active secret, "
                    "space-separated."},
]


def _webhooks() -> dict[str, Any]:
    """The events POSTed to the configured endpoints (docs/webhooks.md), one per type."""
    return {name: {"post": {
        "summary": f"`{name}` event (Standard Webhooks).",
        "parameters": WEBHOOK_HEADERS,
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": schema}}},
        "responses": {"2XX": {"description": "Received; any other answer is retried."}},
    }} for name, schema in events.SCHEMAS.items()}


def _body(fields: Any) -> dict[str, Any]:
    return {"required": body_required(fields),
            "content": {"application/json": {"schema": object_schema(fields)}}}


def build_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "garmin-sync", "version": "1"},
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": PROBLEM_SCHEMA},
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
                {"200": _json("Logged in.", MFA_RESULT)},
                (errors.NoPendingMfa, errors.UserBusy, errors.WriteConflict, errors.MfaExpired,
                 errors.MfaUnreadable, errors.WrongMfaCode, errors.LoginCooldown, *BODY_ERRORS,
                 *GARMIN_ERRORS),
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
                    "properties": {"jobs": {"type": "array", "items": JOB.schema()}}})},
                (errors.NoSession, errors.UserBusy, errors.GarminThrottled, *BODY_ERRORS),
                requestBody={"required": False,
                             "content": {"application/json": {"schema": SYNC_REQUEST}}},
            )},
            "/api/v1/garmin/sync/jobs": {"get": _operation(
                "The user's sync jobs, newest first.",
                {"200": _json("A page of jobs.", _page(JOB.schema()))}, (errors.BadCursor,),
                parameters=[USER_HEADER, *PAGING],
            )},
            "/api/v1/garmin/activities": {"get": _operation(
                "Synced activities, newest first.",
                {"200": _json("A page of activities.", _page(ACTIVITY.schema()))},
                (errors.BadCursor,),
                parameters=[USER_HEADER, _instant("since"), _instant("until"),
                            {"name": "type", "in": "query", "required": False,
                             "schema": {"type": "string", "minLength": 1, "maxLength": 64}},
                            *PAGING],
            )},
            "/api/v1/garmin/health/daily": {"get": _operation(
                "Synced daily health summaries between two dates (at most 366 days).",
                {"200": _json("Days in order.", {
                    "type": "object", "required": ["items"],
                    "properties": {"items": {"type": "array", "items": DAY.schema()}}})},
                parameters=[USER_HEADER, _query("from", "date", True), _query("to", "date", True)],
            )},
            "/api/v1/garmin/session": {"delete": _operation(
                "Disconnect: delete the stored session and MFA state.",
                {"204": {"description": "Deleted (or there was nothing)."}},
                (errors.UserBusy,),
            )},
            "/api/v1/webhooks/deliveries": {"get": _operator(
                "Operator: webhook deliveries, newest first (never their payloads).",
                {"200": _json("A page of deliveries.", _page(DELIVERY_SCHEMA))},
                parameters=[{"name": "status", "in": "query", "required": False,
                             "schema": {"enum": [s.value for s in DeliveryStatus]}},
                            *PAGING],
            )},
            "/api/v1/webhooks/deliveries/{id}/retry": {"post": _operator(
                "Operator: queue a dead delivery again, with fresh attempts.",
                {"202": _json("Queued again.", DELIVERY_SCHEMA)},
                (errors.NotFound, errors.DeliveryNotDead),
                parameters=[{"name": "id", "in": "path", "required": True,
                             "schema": {"type": "integer", "minimum": 1}}],
            )},
        },
        "webhooks": _webhooks(),
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_spec())
