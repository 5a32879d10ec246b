"""Garmin's answers (status x body) -> the service's errors, for the DI engine.

The shapes are assumed from ha-garmin 0.1.53's parsing and what Garmin was seen answering:
SSO JSON `responseStatus.type` (also with a 200), the JSON-body 429
`{"error": {"status-code": "429"}}`, the non-standard 427, Cloudflare's HTML 403 page,
OAuth2 `{"error": "invalid_grant"}` from the token endpoint, connectapi's 401
"Token is not active".
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from ha_garmin.exceptions import GarminAuthError, GarminRateLimitError
from requests.structures import CaseInsensitiveDict

from service.garmin import (
    AuthRejected,
    GarminError,
    GarminProtocolError,
    GarminUnavailable,
    InvalidCredentials,
    MfaChallengeLost,
    MfaCodeInvalid,
    RateLimited,
)
from service.garmin.di.classify import (
    Seen,
    failure,
    mfa_failure,
    seen_failure,
    seen_response,
    strongest,
    verdict,
)

SSO = "https://sso.garmin.com/mobile/api/login"
CODE = "https://sso.garmin.com/mobile/api/mfa/verifyCode"
PORTAL_CODE = "https://sso.garmin.com/portal/api/mfa/verifyCode"
TOKEN = "https://diauth.garmin.com/di-oauth2-service/oauth/token"
API = "https://connectapi.garmin.com/userprofile-service/socialProfile"
CLOUDFLARE = ("<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title>"
              "</head><body>Sorry, you have been blocked</body></html>")


class FakeResponse:
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status_code = status
        self.text = body if isinstance(body, str) else ("" if body is None else json.dumps(body))
        self.headers = CaseInsensitiveDict(headers or {})


def seen(url: str, status: int, body: Any = None, **headers: str) -> Seen:
    return seen_response("POST", url, FakeResponse(status, body, headers))


def sso(kind: str) -> dict[str, Any]:
    return {"responseStatus": {"type": kind}}


TABLE: list[tuple[str, Seen, type[GarminError] | None]] = [
    ("sso 200 success", seen(SSO, 200, {**sso("SUCCESSFUL"), "serviceTicketId": "ST"}), None),
    ("sso 200 MFA required", seen(SSO, 200, sso("MFA_REQUIRED")), None),
    ("sign-in page 200 HTML", seen(SSO, 200, "<html><title>Sign In</title></html>"), None),
    ("wrong code, 200", seen(CODE, 200, sso("INVALID_MFA_CODE")), MfaCodeInvalid),
    ("wrong code, 400", seen(CODE, 400, sso("INVALID_MFA_CODE")), MfaCodeInvalid),
    ("wrong code, 401", seen(CODE, 401, sso("INVALID_MFA_CODE")), MfaCodeInvalid),
    ("wrong code, 403", seen(CODE, 403, sso("INVALID_MFA_CODE")), MfaCodeInvalid),
    ("wrong code, 422", seen(CODE, 422, sso("INVALID_MFA_CODE")), MfaCodeInvalid),
    ("wrong password 200", seen(SSO, 200, sso("INVALID_USERNAME_PASSWORD")),
     InvalidCredentials),
    ("wrong password 401", seen(SSO, 401, sso("INVALID_USERNAME_PASSWORD")),
     InvalidCredentials),
    ("account locked", seen(SSO, 200, sso("ACCOUNT_LOCKED")), InvalidCredentials),
    ("429", seen(SSO, 429, ""), RateLimited),
    ("427 (widget)", seen(SSO, 427, ""), RateLimited),
    ("429 in a 200 JSON body", seen(SSO, 200, {"error": {"status-code": "429"}}), RateLimited),
    ("429 on the token endpoint", seen(TOKEN, 429, {}), RateLimited),
    ("Cloudflare 403 page", seen(SSO, 403, CLOUDFLARE), GarminUnavailable),
    ("invalid_grant", seen(TOKEN, 400, {"error": "invalid_grant"}), AuthRejected),
    ("invalid_client", seen(TOKEN, 401, {"error": "invalid_client"}), AuthRejected),
    ("token endpoint 400, other error", seen(TOKEN, 400, {"error": "invalid_request"}),
     GarminProtocolError),
    ("token not active", seen(API, 401, {"message": "Token is not active"}), AuthRejected),
    ("connectapi 403 JSON", seen(API, 403, {"message": "forbidden"}), GarminProtocolError),
    ("503", seen(TOKEN, 503, "<html><title>503</title></html>"), GarminUnavailable),
    ("500 on connectapi", seen(API, 500, "boom"), GarminUnavailable),
    ("408", seen(SSO, 408, ""), GarminUnavailable),
    ("404", seen(API, 404, ""), GarminProtocolError),
    ("no answer", seen_failure("POST", TOKEN, requests.ConnectionError("refused")),
     GarminUnavailable),
    ("timed out", seen_failure("POST", TOKEN, requests.ReadTimeout("slow")),
     GarminUnavailable),
]


@pytest.mark.parametrize(("answer", "error"), [(s, e) for _, s, e in TABLE],
                         ids=[name for name, _, _ in TABLE])
def test_each_answer_has_one_verdict(answer: Seen, error: type[GarminError] | None) -> None:
    found = verdict(answer)
    if error is None:
        assert found is None
    else:
        assert type(found) is error


def test_retry_after_and_timeouts_are_carried() -> None:
    limited = verdict(seen(SSO, 429, "", **{"Retry-After": "300"}))
    assert isinstance(limited, RateLimited) and limited.retry_after == 300
    slow = verdict(seen_failure("POST", TOKEN, requests.ReadTimeout("slow")))
    assert isinstance(slow, GarminUnavailable) and slow.timeout
    assert seen(TOKEN, 503, "").host == "diauth"
    assert seen(API, 401, {"message": "Token is not active"}).token_inactive


def test_a_recorded_answer_never_holds_a_token() -> None:
    answer = seen(TOKEN, 200, {"access_token": "SECRET-A", "refresh_token": "SECRET-R"})
    assert "SECRET" not in repr(answer)


def test_a_429_anywhere_in_a_step_wins() -> None:
    wrong = seen(CODE, 400, sso("INVALID_MFA_CODE"))
    assert isinstance(strongest([wrong, seen(PORTAL_CODE, 429, "")]), RateLimited)
    assert isinstance(strongest([wrong, seen(PORTAL_CODE, 400, {"x": 1})]), MfaCodeInvalid)
    assert strongest([seen(SSO, 200, sso("SUCCESSFUL"))]) is None


def test_garmins_answer_decides_over_ha_garmins_exception() -> None:
    """ha-garmin raises the wrong-password class for a wrong code, a 503 and an
    invalid_grant alike; the recorded answer says which it was."""
    vague = GarminAuthError("MFA verification failed")
    assert isinstance(failure(vague, [seen(CODE, 200, sso("INVALID_MFA_CODE"))]),
                      MfaCodeInvalid)
    assert isinstance(failure(GarminAuthError("refresh failed: HTTP 503"),
                              [seen(TOKEN, 503, "")]), GarminUnavailable)
    assert isinstance(failure(GarminAuthError("refresh failed: HTTP 400"),
                              [seen(TOKEN, 400, {"error": "invalid_grant"})]), AuthRejected)
    # nothing recorded: the exception's type, never its text
    limited = failure(GarminRateLimitError("all strategies rate limited"), [])
    assert isinstance(limited, RateLimited) and limited.retry_after is None
    assert isinstance(failure(requests.ConnectTimeout("x"), []), GarminUnavailable)
    assert isinstance(failure(KeyError("access_token"), [seen(TOKEN, 200, {})]),
                      GarminProtocolError)
    assert "ST-" not in str(failure(GarminAuthError("ticket=ST-123 failed"), []))


def test_a_code_rejected_without_a_verdict_means_the_challenge_is_gone() -> None:
    gone = [seen(CODE, 400, {"error": "session"}), seen(PORTAL_CODE, 403, {"x": 1})]
    assert isinstance(mfa_failure(GarminAuthError("MFA failed"), gone), MfaChallengeLost)
    wrong = [seen(CODE, 200, sso("INVALID_MFA_CODE")), seen(PORTAL_CODE, 403, {"x": 1})]
    assert isinstance(mfa_failure(GarminAuthError("MFA failed"), wrong), MfaCodeInvalid)
