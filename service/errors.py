"""Every problem the API reports on purpose, one class each, in RFC 9457 problem details.

A class carries what is the same on every answer of its kind: `status`, the `type` slug, the
`title`, and a default `detail`; an instance adds its own detail, headers and extra members.
Its docstring says when it happens: the OpenAPI document lists each operation's problem
classes and describes every status with them (`service.api.v1.openapi`).

Domain code raises these; the API's one middleware renders them (`service.api.middleware`),
and answers anything else as `InternalError` or `DatabaseUnavailable`. No web framework
here: the domain and `service.garmin` import this module too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://garmin-sync.dev/problems/"


class Problem(Exception):
    """The service failed to handle the request; it has been logged."""

    status = 500
    slug = "internal-error"
    title = "Internal error"
    default_detail = "The service failed to handle this request; it has been logged."
    sends_retry_after = False  # every answer of the class carries a Retry-After header

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        self.detail = detail if detail is not None else self.default_detail
        super().__init__(self.detail)
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class InternalError(Problem):
    """The service failed to handle the request; it has been logged."""


def _retry_after(seconds: int) -> dict[str, str]:
    return {"Retry-After": str(seconds)}


# --- the request itself -----------------------------------------------------------------


class BadRequest(Problem):
    """Bad input: a query parameter, a paging cursor, or a body that is no JSON object."""

    status = 400
    slug = "bad-request"
    title = "Bad request"
    default_detail = "The request cannot be used."


class BadCursor(Problem):
    """The paging cursor is not one this API issued for this listing and user."""

    status = 400
    slug = "bad-cursor"
    title = "Bad cursor"
    default_detail = "The cursor is not one this API returned."


class ValidationFailed(Problem):
    """A body field is missing, unknown or invalid; `errors` names each."""

    status = 400
    slug = "validation-error"
    title = "Invalid request body"

    def __init__(self, detail: str, errors: list[dict[str, str]]) -> None:
        super().__init__(detail, errors=errors)


class InvalidUserId(Problem):
    """No single valid X-User-Id header."""

    status = 400
    slug = "invalid-user-id"
    title = "Invalid user id"


class Unauthorized(Problem):
    """Missing or wrong API key."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="garmin-sync"'})


class NotFound(Problem):
    """No such resource."""

    status = 404
    slug = "not-found"
    title = "Not found"
    default_detail = "No such resource."


class DeliveryNotDead(Problem):
    """Only a dead webhook delivery can be queued again."""

    status = 409
    slug = "delivery-not-dead"
    title = "Delivery not dead"
    default_detail = "Only a dead delivery can be retried."


class MethodNotAllowed(Problem):
    """The resource does not take that method; `Allow` lists those it takes."""

    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"
    default_detail = "This resource does not take that method."

    def __init__(self, allowed: Iterable[str] | None = None) -> None:
        super().__init__(headers=None if allowed is None
                         else {"Allow": ", ".join(sorted(allowed))})


class PayloadTooLarge(Problem):
    """Body larger than 64 KiB."""

    status = 413
    slug = "payload-too-large"
    title = "Payload too large"
    default_detail = "The request body is too large."


class UnsupportedMediaType(Problem):
    """Body is not application/json."""

    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"
    default_detail = "Send the body as application/json."


class UnsupportedContentEncoding(Problem):
    """Body sent in a Content-Encoding other than identity (no gzip, deflate or br)."""

    status = 415
    slug = "unsupported-content-encoding"
    title = "Unsupported content encoding"
    default_detail = "Send the body without a Content-Encoding (bodies are small JSON)."


class HttpError(Problem):
    """Any other HTTP error the web framework raised, with its own status and reason."""

    slug = "http-error"

    def __init__(self, status: int, reason: str | None) -> None:
        self.status = status
        self.title = reason or "Error"
        super().__init__(reason or "Request failed.")


# --- the user's session and jobs --------------------------------------------------------


class UserBusy(Problem):
    """Another login, MFA or sync for this user is running."""

    status = 409
    slug = "user-busy"
    title = "User busy"
    default_detail = "Another login, MFA or sync for this user is in progress; retry shortly."


class WriteConflict(Problem):
    """The user's session kept changing concurrently; retry."""

    status = 409
    slug = "write-conflict"
    title = "Concurrent update"
    default_detail = "The user's session changed concurrently; retry."


class NoPendingMfa(Problem):
    """No login waits for an MFA code."""

    status = 409
    slug = "no-pending-mfa"
    title = "No pending MFA"
    default_detail = "There is no login waiting for an MFA code; log in first."


class NoSession(Problem):
    """No valid Garmin session: the user never connected, or it expired."""

    status = 409
    slug = "no-session"
    title = "No Garmin session"

    def __init__(self, expired: bool) -> None:
        super().__init__("The Garmin session expired; log in again." if expired
                         else "The user has not connected a Garmin account; log in first.")


class MfaExpired(Problem):
    """The MFA challenge expired; log in again."""

    status = 410
    slug = "mfa-expired"
    title = "MFA expired"
    default_detail = "The MFA challenge expired; log in again."


class MfaUnreadable(Problem):
    """The pending MFA challenge cannot be used; log in again."""

    status = 410
    slug = "mfa-unreadable"
    title = "MFA challenge unusable"
    default_detail = "The pending MFA challenge cannot be used; log in again."


class WrongMfaCode(Problem):
    """Wrong MFA code; `attempts_remaining` says how many are left."""

    status = 422
    slug = "mfa-code-invalid"
    title = "Invalid MFA code"

    def __init__(self, attempts_remaining: int) -> None:
        super().__init__("Garmin did not accept the MFA code; try again." if attempts_remaining
                         else "The MFA code was wrong too many times; log in again.",
                         attempts_remaining=attempts_remaining)


class InvalidGarminCredentials(Problem):
    """Garmin rejected the credentials."""

    status = 422
    slug = "garmin-invalid-credentials"
    title = "Invalid Garmin credentials"
    default_detail = "Garmin rejected the username or password."


class LoginCooldown(Problem):
    """Garmin throttled this account's logins recently; see Retry-After."""

    status = 429
    slug = "login-cooldown"
    title = "Login cooling down"
    sends_retry_after = True
    default_detail = "Garmin throttled this account recently; wait before trying again."

    def __init__(self, wait_seconds: int) -> None:
        super().__init__(headers=_retry_after(wait_seconds), retry_after=wait_seconds)


# --- Garmin -----------------------------------------------------------------------------


class GarminThrottled(Problem):
    """Garmin throttles this account; see Retry-After."""

    status = 429
    slug = "garmin-rate-limited"
    title = "Garmin rate limit"
    sends_retry_after = True
    default_detail = "Garmin is throttling this account; try again later."

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail, headers=_retry_after(retry_after), retry_after=retry_after)


class GarminBadResponse(Problem):
    """Garmin sent an unusable answer."""

    status = 502
    slug = "garmin-bad-response"
    title = "Bad answer from Garmin"
    default_detail = "Garmin sent an answer the service cannot use; try again later."


class GarminFailed(Problem):
    """Garmin refused the call for another reason."""

    status = 502
    slug = "garmin-error"
    title = "Garmin error"


class GarminUnavailableProblem(Problem):
    """Garmin unreachable or timed out."""

    status = 503
    slug = "garmin-unavailable"
    title = "Garmin unavailable"
    sends_retry_after = True

    def __init__(self, timeout: bool) -> None:
        super().__init__("Garmin did not answer in time." if timeout
                         else "Garmin is unreachable.", headers=_retry_after(30))


# --- the service itself -----------------------------------------------------------------


class NotReady(Problem):
    """A dependency of the service is not ready; `failing` names them."""

    status = 503
    slug = "not-ready"
    title = "Not ready"

    def __init__(self, failing: list[str]) -> None:
        super().__init__(f"Not ready: {', '.join(failing)}.", failing=failing)


class DatabaseUnavailable(Problem):
    """The service cannot reach its database; see Retry-After."""

    status = 503
    slug = "database-unavailable"
    title = "Database unavailable"
    sends_retry_after = True
    default_detail = "The service cannot reach its database right now; retry shortly."

    def __init__(self) -> None:
        super().__init__(headers=_retry_after(5))
