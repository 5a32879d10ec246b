"""Scripted misbehaviour: what a fault does, where it can be injected, and how it is used up.

The HTTP side (sleeping, dropping the connection, answering an error page) lives in
`interference.py`; this module is pure data so tests and seed files can build faults.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .errors import ValidationError
from .fields import boolean, int_in, number_in, optional_int, reject_unknown_keys

SCOPES: Final = (
    "signin",
    "login",
    "mfa",
    "preauthorized",
    "exchange",
    "api",
    "portal_signin",
    "portal_login",
    "portal_mfa",
    "di_token",
    "di_refresh",
)
"""Where a fault can be injected: one per step of the mobile SSO flow (garth's, and the first
one DI clients try) and of the OAuth1/OAuth2 exchanges, every API call, the portal SSO flow
(its own rate-limit bucket at Garmin, so a test can block one flow and not the other), and
the DI token endpoint's two grants (service ticket, refresh)."""

MAX_HANG_SECONDS: Final = 3600.0


def validate_scope(scope: str) -> str:
    """Return `scope` if faults can be injected there, else raise ValidationError."""
    if scope not in SCOPES:
        raise ValidationError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
    return scope


@dataclass
class Fault:
    """A scripted misbehaviour for one scope, like Garmin's outages and rate limits.

    Effects, in order: sleep `hang_seconds`, then drop the connection (`reset`), or answer
    Cloudflare's bot-challenge page (`cloudflare`, 403 unless `status` says otherwise), or an
    HTML page (`html`), or truncated JSON (`truncated`), or the JSON object `body` as given
    (with `status`, 200 by default: Garmin's SSO reports some blocks inside a 200, e.g.
    `{"error": {"status-code": "429"}}`), or a JSON error with `status` shaped like the
    endpoint's own errors. A fault with only `hang_seconds` delays the real answer. `times`
    limits the fault to the next N matching requests; None keeps it until removed.
    """

    status: int | None = None
    retry_after: int | None = None
    hang_seconds: float | None = None
    reset: bool = False
    truncated: bool = False
    html: bool = False
    cloudflare: bool = False
    body: dict[str, Any] | None = None
    times: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a validated fault from JSON/YAML input."""
        if not isinstance(data, Mapping):
            raise ValidationError("a fault must be an object")
        reject_unknown_keys(data, (f.name for f in dataclasses.fields(cls)), "fault")
        fault = cls(
            status=_optional_status(data.get("status")),
            retry_after=optional_int(data.get("retry_after"), "retry_after", 0, 86_400),
            hang_seconds=_optional_hang(data.get("hang_seconds")),
            reset=boolean(data.get("reset", False), "reset"),
            truncated=boolean(data.get("truncated", False), "truncated"),
            html=boolean(data.get("html", False), "html"),
            cloudflare=boolean(data.get("cloudflare", False), "cloudflare"),
            body=_optional_body(data.get("body")),
            times=optional_int(data.get("times"), "times", 1, 1_000_000),
        )
        fault.check()
        return fault

    def check(self) -> None:
        """Refuse faults that would do nothing, so a typo does not silently pass a test."""
        has_effect = (
            self.status is not None
            or self.hang_seconds is not None
            or self.reset
            or self.truncated
            or self.html
            or self.cloudflare
            or self.body is not None
        )
        if not has_effect:
            raise ValidationError(
                "a fault needs at least one of status, hang_seconds, reset, truncated, html,"
                " cloudflare, body"
            )
        if self.retry_after is not None and self.status is None:
            raise ValidationError("retry_after needs a status (e.g. 429 or 503)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (used by the control API and the seed format)."""
        return dataclasses.asdict(self)


def _optional_status(value: Any) -> int | None:
    if value is None:
        return None
    status = int_in(value, "status", 200, 599)
    if status in (204, 304):
        raise ValidationError("status must allow a body (not 204 or 304)")
    return status


def _optional_body(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError("body must be a JSON object")
    return dict(value)


def _optional_hang(value: Any) -> float | None:
    return None if value is None else number_in(value, "hang_seconds", 0.0, MAX_HANG_SECONDS)


def faults_from(data: Any) -> dict[str, Fault]:
    """A scope -> fault mapping from JSON/YAML input (an account's `faults`)."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValidationError("faults must be an object of scope -> fault")
    return {validate_scope(str(scope)): Fault.from_dict(f) for scope, f in data.items()}


def take(sources: Iterable[dict[str, Fault]], scope: str) -> Fault | None:
    """The first fault for `scope` among `sources` (most specific first), consuming one of
    its `times`; a fault whose `times` run out is removed from its table."""
    for faults in sources:
        fault = faults.get(scope)
        if fault is None:
            continue
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                del faults[scope]
        return fault
    return None
