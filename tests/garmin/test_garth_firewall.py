"""garth's classifier: Cloudflare's HTML 403 page is no verdict on the credentials or the
session at any step; Garmin's own 403 (JSON) on a data call still rejects the session."""

from __future__ import annotations

import pytest
import requests

from service.garmin.errors import AuthRejected, GarminUnavailable
from service.garmin.garth.classify import classify

CLOUDFLARE = ("<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title>"
              "</head><body>Sorry, you have been blocked</body></html>")
STEPS = {
    "login": "https://sso.garmin.com/mobile/api/login",
    "mfa": "https://sso.garmin.com/mobile/api/mfa/verifyCode",
    "exchange": "https://connectapi.garmin.com/oauth-service/oauth/exchange/user/2.0",
    "api": "https://connectapi.garmin.com/userprofile-service/socialProfile",
}


def _error(status: int, body: str, url: str) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.url = url
    response._content = body.encode()
    return requests.HTTPError(response=response)


@pytest.mark.parametrize("url", STEPS.values(), ids=list(STEPS))
def test_a_firewall_page_is_garmin_unavailable_at_every_step(url: str) -> None:
    error = classify(_error(403, CLOUDFLARE, url))
    assert isinstance(error, GarminUnavailable) and not error.timeout


def test_garmins_own_403_on_a_data_call_still_rejects_the_session() -> None:
    assert isinstance(classify(_error(403, '{"message": "forbidden"}', STEPS["api"])),
                      AuthRejected)
