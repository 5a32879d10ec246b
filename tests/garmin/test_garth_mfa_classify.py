"""garth's MFA step: Garmin's verdict on a wrong code keeps the challenge, whatever status
carries it (but a 429 is a rate limit); any other 4xx there means the challenge is gone."""

from __future__ import annotations

import json

import pytest
import requests

from service.garmin.errors import MfaChallengeLost, MfaCodeInvalid, RateLimited
from service.garmin.garth.classify import classify

MFA_URL = "https://sso.garmin.com/mobile/api/mfa/verifyCode"


def _error(status: int, body: object, url: str = MFA_URL) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.url = url
    response._content = json.dumps(body).encode() if body is not None else b"<html></html>"
    return requests.HTTPError(response=response)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 500])
def test_a_wrong_code_keeps_the_challenge_whatever_status_carries_it(status: int) -> None:
    body = {"responseStatus": {"type": "INVALID_MFA_CODE", "message": "Invalid code"}}
    assert isinstance(classify(_error(status, body)), MfaCodeInvalid)


def test_a_wrong_code_named_in_another_field_keeps_the_challenge() -> None:
    body = {"error": {"errorCode": "INVALID_MFA_CODE"}}
    assert isinstance(classify(_error(400, body)), MfaCodeInvalid)


@pytest.mark.parametrize("status", [400, 404, 422])
@pytest.mark.parametrize("body", [None, {"responseStatus": {"type": "INVALID_SESSION"}}])
def test_any_other_4xx_at_the_mfa_step_loses_the_challenge(status: int, body: object) -> None:
    assert isinstance(classify(_error(status, body)), MfaChallengeLost)


def test_a_429_at_the_mfa_step_is_a_rate_limit_even_naming_the_code() -> None:
    body = {"responseStatus": {"type": "INVALID_MFA_CODE"}}
    assert isinstance(classify(_error(429, body)), RateLimited)
