"""Every exception garth or requests can raise, turned into a `GarminError`, in one place.

What arrives: `GarthHTTPError` (garth's wrapper of an HTTP error, from its own requests and
ours), a raw `requests.HTTPError` (the OAuth1 steps are not wrapped), `GarthException` with
Garmin's SSO verdict in its message, raw connection and timeout errors (a read timeout
arrives as a `ConnectionError` whenever a urllib3 retry is mounted), bodies that are not
JSON, and pydantic/key/type errors from answers of an unexpected shape. The HTTP status is
read together with the step that failed (`_stage_of`): a 401 at login is a wrong password, a
401 on a data call a rejected session.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import requests
from garth.exc import GarthException, GarthHTTPError
from pydantic import ValidationError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from service.garmin.errors import (
    AuthRejected,
    GarminError,
    GarminProtocolError,
    GarminUnavailable,
    InvalidCredentials,
    MfaChallengeLost,
    MfaCodeInvalid,
    RateLimited,
)


def _stage_of(response: requests.Response | None) -> str:
    path = urlsplit(response.url).path if response is not None and response.url else ""
    for marker, stage in (
        ("/mobile/api/login", "login"),
        ("/mfa/verifyCode", "mfa"),
        ("/oauth/preauthorized", "preauthorized"),
        ("/oauth/exchange", "exchange"),
        ("/mobile/sso", "signin"),
        ("/portal/sso", "signin"),
    ):
        if marker in path:
            return stage
    return "api"


def _retry_after(response: requests.Response) -> int | None:
    value = response.headers.get("Retry-After", "").strip()
    return int(value) if value.isdigit() else None


def _sso_error_type(response: requests.Response | None) -> str:
    """Garmin's SSO `responseStatus.type` in an error body; "" when it is not that JSON."""
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return ""
    status = body.get("responseStatus") if isinstance(body, dict) else None
    kind = status.get("type") if isinstance(status, dict) else None
    return kind if isinstance(kind, str) else ""


def _says_invalid_code(response: requests.Response | None) -> bool:
    """Garmin's SSO JSON names a wrong code (`INVALID_MFA_CODE`, in `responseStatus.type`
    or an error code field)."""
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return False
    return isinstance(body, dict) and "INVALID_MFA_CODE" in json.dumps(body)


def _is_html(response: requests.Response) -> bool:
    try:
        head = response.text[:4000].lower()
    except (ValueError, UnicodeDecodeError):
        return False
    return "<html" in head or "<title" in head


def _classify_http(response: requests.Response | None) -> GarminError:
    status = response.status_code if response is not None else 0
    stage = _stage_of(response)
    if response is not None and status in (427, 429):  # 427: the SSO's other block
        return RateLimited(f"Garmin rate limit ({stage})", retry_after=_retry_after(response))
    if response is not None and status == 403 and _is_html(response):
        # Cloudflare's challenge page: the request never reached Garmin's verdict on the
        # credentials or the session
        return GarminUnavailable(f"Garmin's firewall refused the request ({stage})")
    if stage == "mfa" and _says_invalid_code(response):
        # Garmin's status for a wrong code is not documented (200 and several 4xx are
        # seen): its own verdict on the code keeps the challenge, whatever status carries it
        return MfaCodeInvalid("the MFA code was not accepted")
    if status >= 500 or status == 408:
        return GarminUnavailable(f"Garmin answered {status} ({stage})")
    if stage == "login" and status in (400, 401, 403):
        # a 403 is also Cloudflare or a sign-in session Garmin lost (its sign-in page broke):
        # only a 401 or Garmin's own verdict means the password is wrong
        kind = _sso_error_type(response)
        if status == 401 or "INVALID_USERNAME_PASSWORD" in kind or "ACCOUNT" in kind:
            return InvalidCredentials("Garmin rejected the username or password")
        return GarminProtocolError(f"unexpected Garmin answer {status} ({stage})")
    if stage == "mfa" and 400 <= status < 500:
        # a 4xx at the code check that says nothing of the code: the challenge is gone
        return MfaChallengeLost("Garmin no longer accepts this MFA challenge")
    if stage in ("exchange", "api") and status in (401, 403):
        return AuthRejected(f"Garmin rejected the session ({stage} {status})")
    return GarminProtocolError(f"unexpected Garmin answer {status} ({stage})")


def blocked_in_body(answer: object) -> bool:
    """Garmin's SSO also blocks with a 200 whose JSON is `{"error": {"status-code": "429"}}`."""
    error = answer.get("error") if isinstance(answer, dict) else None
    return isinstance(error, dict) and str(error.get("status-code")) == "429"


def _classify_sso(message: str) -> GarminError:
    if "MFA" in message and ("INVALID" in message or "CODE" in message):
        return MfaCodeInvalid("the MFA code was not accepted")
    if "INVALID_USERNAME_PASSWORD" in message or "ACCOUNT" in message:
        return InvalidCredentials("Garmin rejected the username or password")
    if "SESSION" in message:
        return MfaChallengeLost("Garmin no longer accepts this MFA challenge")
    return GarminProtocolError("unexpected Garmin sign-in answer")


def _timed_out(exc: BaseException) -> bool:
    """requests reports a read timeout as ConnectionError(MaxRetryError(ReadTimeoutError))
    whenever a urllib3 Retry is mounted (ours always is): look at the cause."""
    if not isinstance(exc, requests.ConnectionError) or not exc.args:
        return False
    reason = getattr(exc.args[0], "reason", exc.args[0])
    return isinstance(reason, Urllib3Timeout)


def classify(exc: BaseException) -> GarminError:
    """Every exception garth or requests can raise, mapped to the service's error types.

    The message never includes the exception text: garth and requests put URLs (with
    tickets) and bodies into theirs.
    """
    if isinstance(exc, GarminError):
        return exc
    if isinstance(exc, requests.exceptions.JSONDecodeError | json.JSONDecodeError):
        return GarminProtocolError("Garmin sent a body that is not valid JSON")
    if isinstance(exc, GarthHTTPError):
        return _classify_http(exc.error.response)
    if isinstance(exc, requests.HTTPError):
        return _classify_http(exc.response)
    if isinstance(exc, requests.Timeout) or _timed_out(exc):
        return GarminUnavailable("Garmin did not answer in time", timeout=True)
    if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return GarminUnavailable("cannot reach Garmin")
    if isinstance(exc, requests.RequestException):
        return GarminUnavailable(f"request to Garmin failed ({type(exc).__name__})")
    if isinstance(exc, GarthException):
        return _classify_sso(exc.msg)
    if isinstance(exc, ValidationError | KeyError | TypeError | ValueError):
        return GarminProtocolError("Garmin sent an answer of an unexpected shape")
    if isinstance(exc, AssertionError):
        return AuthRejected("the session has no usable OAuth1 token")
    raise exc
