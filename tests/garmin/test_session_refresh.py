"""A user's parallel calls share one stored session: token refreshes never race into a
wrong verdict."""

from __future__ import annotations

from typing import Any

import pytest


def test_a_401_while_a_parallel_refresh_failed_is_not_a_definitive_rejection() -> None:
    """The call whose refresh failed reports why; another call's 401 for the old token must
    not turn a network error into an expired session."""
    import requests
    from garth.auth_tokens import OAuth2Token
    from garth.exc import GarthHTTPError

    from service.garmin import GarminSettings, GarminUnavailable
    from service.garmin.garth.api import GarminApi

    token = OAuth2Token(scope="s", jti="j", token_type="Bearer", access_token="a",
                        refresh_token="r", expires_in=3600, expires_at=2**40,
                        refresh_token_expires_in=3600, refresh_token_expires_at=2**40)

    class ClientWhoseRefreshFailsMeanwhile:
        oauth2_token = token
        refreshes = 0
        refresh_failed = False

        def valid_token(self) -> OAuth2Token:
            return token

        def api_get(self, path: str, params: Any, used: OAuth2Token) -> Any:
            self.refresh_failed = True  # a parallel call's refresh failed while this one ran
            answer = requests.Response()
            answer.status_code = 401
            raise GarthHTTPError(msg="Error in request",
                                 error=requests.HTTPError(response=answer))

    api = GarminApi(GarminSettings(domain="garmin.com"), "user-1", "unused")
    api._client = ClientWhoseRefreshFailsMeanwhile()  # type: ignore[assignment]
    with pytest.raises(GarminUnavailable):
        api.get("/userprofile-service/socialProfile")
