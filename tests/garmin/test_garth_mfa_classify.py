"""garth's MFA step: Garmin's verdict on a wrong code keeps the challenge, whatever status
carries it; any other 4xx there means the challenge is gone."""

from __future__ import annotations

import json

import pytest
import requests

from service.garmin.errors import MfaChallengeLost, MfaCodeInvalid
from service.garmin.garth.classify import classify

MFA_URL = "https://sso.garmin.com/mobile/api/mfa/verifyCode"


def _error(status: int, body: object, url: str = MFA_URL) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.url = url
    response._content = json.dumps(body).encode() if body is not None else b"<html></html>"
    return requests.HTTPError(response=response)


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_wrong_code_in_a_4xx_keeps_the_challenge(status: int) -> None:
    body = {"responseStatus": {"type": "INVALID_MFA_CODE", "message": "Invalid code"}}
    assert isinstance(classify(_error(status, body)), MfaCodeInvalid)


def test_a_wrong_code_named_in_another_field_keeps_the_challenge() -> None:
    body = {"error": {"errorCode": "INVALID_MFA_CODE"}}
    assert isinstance(classify(_error(400, body)), MfaCodeInvalid)


@pytest.mark.parametrize("body", [None, {"responseStatus": {"type": "INVALID_SESSION"}}])
def test_any_other_4xx_at_the_mfa_step_loses_the_challenge(body: object) -> None:
    assert isinstance(classify(_error(400, body)), MfaChallengeLost)
