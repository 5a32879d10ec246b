"""Response bodies declared once: each `Out` field says how to read it from the domain
object and what it is, so the same declaration renders the answer and documents it in
OpenAPI (as `StringField` does for request bodies)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

STRING_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
INTEGER: dict[str, Any] = {"type": "integer"}
INTEGER_OR_NULL: dict[str, Any] = {"type": ["integer", "null"]}
NUMBER_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}
DATETIME: dict[str, Any] = {"type": "string", "format": "date-time"}
DATETIME_OR_NULL: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
DATE: dict[str, Any] = {"type": "string", "format": "date"}


def enum_of(kind: type[Enum]) -> dict[str, Any]:
    return {"enum": [member.value for member in kind]}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


@dataclass(frozen=True)
class Out:
    """One member of a response object: its name, its JSON schema and how to read it
    (the attribute of the same name unless `read` says otherwise)."""

    name: str
    schema: dict[str, Any]
    read: Callable[[Any], Any] | None = None


class Shape:
    """A response object: `render` builds it from a domain object, `schema` documents it."""

    def __init__(self, *fields: Out) -> None:
        self.fields = fields
        self._readers = tuple((field.name, field.read or _attribute(field.name))
                              for field in fields)

    def render(self, obj: Any) -> dict[str, Any]:
        return {name: _plain(read(obj)) for name, read in self._readers}

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": False,
                "required": [field.name for field in self.fields],
                "properties": {field.name: field.schema for field in self.fields}}


def _attribute(name: str) -> Callable[[Any], Any]:
    return lambda obj: getattr(obj, name)
