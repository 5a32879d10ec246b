"""Garmin's answers to the DI engine, in the service's words: the one place that reads them.

ha-garmin's exceptions lose what matters: a wrong MFA code and a lost challenge are both
`GarminAuthError`, a failed ticket exchange is the class of a wrong password, a 503 and an
`invalid_grant` on refresh differ only in their message, and `GarminRateLimitError` has no
Retry-After. So every response the engine's HTTP sees is recorded as a `Seen` (status and
the few verdict fields of its body, never tokens), and the error is decided from those:

- 427 or 429, or SSO JSON `{"error": {"status-code": "429"}}`: RateLimited (Retry-After);
- SSO JSON `responseStatus.type` INVALID_MFA_CODE, whatever the status: MfaCodeInvalid;
- SSO JSON INVALID_USERNAME_PASSWORD or an ACCOUNT_* type: InvalidCredentials;
- token endpoint JSON `error` invalid_grant (or invalid_client): AuthRejected;
- connectapi 401 ("Token is not active"): AuthRejected, once the session refreshed;
- a 403 HTML page (Cloudflare's): GarminUnavailable, no verdict on the credentials;
- 5xx, 408, no answer at all: GarminUnavailable (`timeout` when it timed out);
- any other 4xx: GarminProtocolError.

Several responses of one step (an MFA code goes to two URLs) are ranked: a 429 anywhere
wins, since whatever else was said, Garmin must be left alone now.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from curl_cffi.requests import exceptions as cffi_exceptions
from ha_garmin.exceptions import GarminRateLimitError

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

_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_OAUTH_REJECTIONS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


@dataclass(frozen=True)
class Seen:
    """One request and what Garmin answered: the status and the verdict fields only.

    `status` 0 is no answer at all (`failure` says why). Bodies are not kept: an SSO answer
    carries a service ticket, a token answer the tokens.
    """

    method: str
    host: str  # Garmin's subdomain: sso, diauth, connectapi
    path: str
    status: int
    retry_after: int | None = None
    sso_type: str = ""  # SSO JSON responseStatus.type
    json_status: str = ""  # SSO JSON error.status-code
    oauth_error: str = ""  # token endpoint JSON error
    html: bool = False  # an HTML page (a sign-in page, or a firewall's)
    token_inactive: bool = False  # connectapi's "Token is not active"
    failure: str = ""  # "timeout" or "connect" when there was no answer


def _where(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.hostname.split(".", 1)[0] if parts.hostname else "", parts.path


def _retry_after(headers: Any) -> int | None:
    value = str(headers.get("Retry-After") or "").strip()
    return int(value) if value.isdigit() else None


def seen_response(method: str, url: str, response: Any) -> Seen:
    """A response of requests or curl_cffi, as recorded. `url` is Garmin's (not routed)."""
    host, path = _where(url)
    status = int(response.status_code)
    try:
        text = str(response.text or "")
    except (ValueError, UnicodeDecodeError):
        text = ""
    body: Any = None
    if text.lstrip().startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            body = None
    sso_type = json_status = oauth_error = ""
    if isinstance(body, dict):
        response_status = body.get("responseStatus")
        if isinstance(response_status, dict):
            sso_type = str(response_status.get("type") or "")
        error = body.get("error")
        if isinstance(error, dict):
            json_status = str(error.get("status-code") or "")
        elif isinstance(error, str):
            oauth_error = error
    html = "<html" in text[:2000].lower() or _TITLE.search(text[:4000]) is not None
    return Seen(method, host, path, status, _retry_after(response.headers), sso_type,
                json_status, oauth_error, html,
                token_inactive=status == 401 and "token is not active" in text.lower())


def seen_failure(method: str, url: str, exc: BaseException) -> Seen:
    host, path = _where(url)
    return Seen(method, host, path, 0, failure="timeout" if _timed_out(exc) else "connect")


def _timed_out(exc: BaseException) -> bool:
    if isinstance(exc, requests.Timeout | cffi_exceptions.Timeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return type(reason).__name__.endswith("TimeoutError")


def verdict(seen: Seen) -> GarminError | None:
    """Garmin's answer in our words; None when it says nothing wrong."""
    if seen.failure == "timeout":
        return GarminUnavailable("Garmin did not answer in time", timeout=True)
    if seen.failure:
        return GarminUnavailable("cannot reach Garmin")
    if seen.status in (427, 429) or seen.json_status == "429":
        return RateLimited(f"Garmin rate limit ({seen.host})", retry_after=seen.retry_after)
    if seen.sso_type == "INVALID_MFA_CODE":
        return MfaCodeInvalid("the MFA code was not accepted")
    if seen.sso_type == "INVALID_USERNAME_PASSWORD" or seen.sso_type.startswith("ACCOUNT"):
        return InvalidCredentials("Garmin rejected the username or password")
    if seen.oauth_error in _OAUTH_REJECTIONS:
        return AuthRejected(f"Garmin rejected the session's token ({seen.oauth_error})")
    if seen.status >= 500 or seen.status == 408:
        return GarminUnavailable(f"Garmin answered {seen.status} ({seen.host})")
    if seen.status == 403 and seen.html:
        # Cloudflare's challenge page: the request never reached Garmin's verdict
        return GarminUnavailable(f"Garmin's firewall refused the request ({seen.host})")
    if seen.status == 401 and seen.host == "connectapi":
        return AuthRejected("Garmin rejected the session's access token")
    if seen.status >= 400:
        return GarminProtocolError(f"unexpected Garmin answer {seen.status} ({seen.host})")
    return None


_RANK: tuple[type[GarminError], ...] = (
    RateLimited, MfaCodeInvalid, InvalidCredentials, AuthRejected, MfaChallengeLost,
    GarminUnavailable, GarminProtocolError,
)


def _rank(error: GarminError) -> int:
    return next(i for i, kind in enumerate(_RANK) if isinstance(error, kind))


def strongest(seen: list[Seen]) -> GarminError | None:
    """The verdict that decides a step of several responses (the first of the best rank)."""
    found = [error for error in map(verdict, seen) if error is not None]
    return min(found, key=_rank) if found else None


def _from_exception(exc: BaseException) -> GarminError:
    """When no recorded answer says anything: the exception's own type."""
    if isinstance(exc, GarminError):
        return exc
    if isinstance(exc, GarminRateLimitError):
        return RateLimited("Garmin rate limit")
    if isinstance(exc, requests.RequestException | cffi_exceptions.RequestException):
        if _timed_out(exc):
            return GarminUnavailable("Garmin did not answer in time", timeout=True)
        return GarminUnavailable(f"request to Garmin failed ({type(exc).__name__})")
    return GarminProtocolError(f"unexpected Garmin answer ({type(exc).__name__})")


def failure(exc: BaseException, seen: list[Seen]) -> GarminError:
    """An exception of a step (a login strategy, a refresh) with the responses it saw.

    Our own errors (a deadline, a refused route) pass as they are; otherwise Garmin's
    recorded answers decide, and the exception's type only when they say nothing. The
    message never includes the exception's text (URLs with tickets, bodies).
    """
    if isinstance(exc, GarminError):
        return exc
    return strongest(seen) or _from_exception(exc)


def mfa_failure(exc: BaseException, seen: list[Seen]) -> GarminError:
    """A code attempt that failed: a 4xx on the verify URLs that says nothing of the code
    means Garmin no longer knows the challenge."""
    error = failure(exc, seen)
    if isinstance(error, GarminProtocolError) and any(
            "verify" in s.path.lower() and 400 <= s.status < 500 for s in seen):
        return MfaChallengeLost("Garmin no longer accepts this MFA challenge")
    return error
