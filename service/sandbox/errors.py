"""The sandbox's refusals: Garmin-shaped ones for the HTTP layer, and bad control input."""

from __future__ import annotations


class SandboxError(Exception):
    """A refusal the HTTP layer turns into a Garmin-shaped answer.

    `kind` is Garmin's `responseStatus.type` for SSO steps (e.g. INVALID_USERNAME_PASSWORD)
    and a short reason elsewhere; `status` is the HTTP status Garmin would use.
    """

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message


class ValidationError(ValueError):
    """Bad input from the control API or a seed file (mapped to HTTP 400)."""


class AccountExists(ValidationError):
    """An account with that username is already present (mapped to HTTP 409)."""


class UnknownAccount(KeyError):
    """No account with that username (mapped to HTTP 404)."""
