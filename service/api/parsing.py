"""Strict request parsing: a JSON object with exactly the documented fields.

Bad input is answered with a 4xx problem naming each wrong field, never a 500.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from service.errors import BadRequest, UnsupportedMediaType, ValidationFailed

MAX_BODY_BYTES = 64 * 1024
# C0 controls (NUL among them: PostgreSQL text cannot hold it), DEL, and lone surrogates
# (JSON's "\ud800" decodes to one; no database or UTF-8 encoder takes it)
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """What makes `value` unfit to be stored or compared in the database, or None."""
    if _UNSTORABLE.search(value):
        return "must not contain control characters or lone surrogates"
    return None


@dataclass(frozen=True)
class StringField:
    """A string field with length bounds and an optional pattern; required unless it has a
    `default`."""

    name: str
    min_length: int = 1
    max_length: int = 256
    pattern: str | None = None
    description: str = ""
    default: str | None = None

    def check(self, value: Any) -> str | None:
        """The problem with `value`, or None when it is acceptable."""
        if not isinstance(value, str):
            return "must be a string"
        if not self.min_length <= len(value) <= self.max_length:
            return f"must be {self.min_length} to {self.max_length} characters"
        if problem := text_problem(value):
            return problem
        if self.pattern and not re.fullmatch(self.pattern, value):
            return f"must match {self.pattern}"
        return None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "minLength": self.min_length,
                                  "maxLength": self.max_length}
        if self.pattern:
            schema["pattern"] = f"^{self.pattern}$"
        if self.description:
            schema["description"] = self.description
        if self.default is not None:
            schema["default"] = self.default
        return schema


def body_required(fields: tuple[StringField, ...]) -> bool:
    """Whether a body must be sent: it may be left out when every field has a default."""
    return any(field.default is None for field in fields)


def object_schema(fields: tuple[StringField, ...]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [field.name for field in fields if field.default is None],
        "properties": {field.name: field.schema() for field in fields},
    }


async def read_json_object(request: web.Request, *,
                           empty_means_defaults: bool = False) -> dict[str, Any]:
    """The body as a JSON object. With `empty_means_defaults` (every field of the body has a
    default), a request without a body is the empty object: there is nothing whose media
    type could be wrong."""
    if empty_means_defaults and not request.body_exists:
        return {}
    if request.content_type != "application/json":
        raise UnsupportedMediaType()
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The body is not valid JSON.") from None
    except RecursionError:
        # A few KiB of "[[[[..." nest past the interpreter's recursion limit; that is bad
        # input like any other, not a 500.
        raise BadRequest("The body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


async def parse_body(request: web.Request, fields: tuple[StringField, ...]) -> dict[str, str]:
    """The body's fields, each valid (or left out and defaulted), nothing extra."""
    body = await read_json_object(request, empty_means_defaults=not body_required(fields))
    errors: list[dict[str, str]] = []
    known = {field.name for field in fields}
    for name in body:
        if name not in known:
            errors.append({"field": str(name)[:64], "problem": "unknown field"})
    values: dict[str, str] = {}
    for field in fields:
        if field.name not in body:
            if field.default is None:
                errors.append({"field": field.name, "problem": "is required"})
            else:
                values[field.name] = field.default
            continue
        problem = field.check(body[field.name])
        if problem:
            errors.append({"field": field.name, "problem": problem})
        else:
            values[field.name] = body[field.name]
    if errors:
        summary = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
        raise ValidationFailed(summary, errors)
    return values


def parse_bool_query(request: web.Request, name: str) -> bool:
    value = request.query.get(name)
    if value is None:
        return False
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise BadRequest(f"Query parameter {name} must be true or false.")
