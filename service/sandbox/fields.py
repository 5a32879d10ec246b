"""Checks for control-API and seed input: each raises ValidationError naming the field."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ValidationError


def require_str(data: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = data.get(key)
    if not isinstance(value, str) or (not allow_empty and not value):
        raise ValidationError(f"{key} must be a non-empty string")
    return value


def optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{key} must be a non-empty string or null (quote it in YAML)")
    return value


def int_in(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{key} must be an integer between {low} and {high}")
    return value


def optional_int(value: Any, key: str, low: int, high: int) -> int | None:
    return None if value is None else int_in(value, key, low, high)


def number_in(value: Any, key: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValidationError(f"{key} must be a number between {low} and {high}")
    return float(value)


def boolean(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{key} must be true or false")
    return value


def reject_unknown_keys(data: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationError(f"unknown {what} field(s): {', '.join(unknown)}")
