"""A stored DI session in use (`DiSession`) and its format.

The stored form is JSON (the service seals it): `{"engine": "di", "v": 1, "access_token",
"refresh_token", "client_id", "expires_at"}`, `expires_at` being the access token's JWT
`exp` (None when it has none).

Garmin rotates the refresh token on every refresh and answers `invalid_grant` to a used
one, so a refreshed session that is not written back is a dead session. Hence:

- the refresh is decided here, never by ha-garmin (it refreshes 15 minutes early and its
  `refresh_session()` turns every failure into False): before a call when `exp` is within
  `di_refresh_margin_seconds`, and after a connectapi 401; at most once per use;
- the refresh runs ha-garmin's `_refresh_di_token` as it is, on a `Wire` that records
  Garmin's answer, so a 503 or a timeout (transient), a 429 (with its Retry-After) and an
  `invalid_grant` (definitive) are told apart (`classify`);
- after a successful refresh `refreshed_session()` holds the new refresh token, also when a
  later call of the use fails; after a failed one it holds nothing.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from ha_garmin.auth import GarminAuth
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar, merge_cookies
from requests.structures import CaseInsensitiveDict

from service.garmin.di import classify
from service.garmin.di.instance import new_auth
from service.garmin.di.wire import Wire
from service.garmin.engine import GarminSettings
from service.garmin.environment import EnvironmentSession, OriginSettings
from service.garmin.errors import (
    AuthRejected,
    GarminError,
    GarminProtocolError,
    GarminUnavailable,
)
from service.garmin.routing import SANDBOX_CALLER_HEADER, RoutingRefused, routed_url

VERSION = 1


def expiry_of(access_token: str) -> int | None:
    """The JWT's `exp` (seconds since the epoch); None for a token that is not a JWT."""
    parts = access_token.split(".")
    if len(parts) < 2:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return int(exp) if isinstance(exp, int | float) else None


def dump(auth: GarminAuth) -> str:
    """The session to store, from an instance holding a DI token."""
    token = auth.di_token
    if not token:
        raise AuthRejected("Garmin gave no DI access token")
    return json.dumps({
        "engine": "di", "v": VERSION, "access_token": token,
        "refresh_token": auth.di_refresh_token, "client_id": auth.di_client_id,
        "expires_at": expiry_of(token),
    })


def load(auth: GarminAuth, stored: str) -> int | None:
    """Put a stored session's tokens into `auth`; returns the access token's expiry."""
    try:
        data = json.loads(stored)
    except ValueError:
        data = None
    if (not isinstance(data, dict) or data.get("engine") != "di" or data.get("v") != VERSION
            or not isinstance(data.get("access_token"), str)):
        raise AuthRejected("the stored session cannot be read")
    auth.di_token = data["access_token"]
    auth.di_refresh_token = data.get("refresh_token")
    auth.di_client_id = data.get("client_id")
    expires_at = data.get("expires_at")
    return int(expires_at) if isinstance(expires_at, int | float) else None


def _refresh_failed_elsewhere() -> GarminError:
    """Not definitive: the parallel call whose refresh failed raises the real reason."""
    return GarminUnavailable("the session's refresh failed in a parallel call")


class DiSession:
    """One user's stored DI session in use by one job: connectapi GETs that several pool
    threads may make at once, each with this user's token only.

    Loaded on the first call, in the pool. A lock serialises loading and refreshing: a call
    whose token another call already replaced retries with the new token instead of
    refreshing again, and nothing refreshes after a failed refresh.
    """

    def __init__(self, settings: GarminSettings, caller: str, stored: str,
                 adapter: HTTPAdapter, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._caller = caller
        self._stored = stored
        self._adapter = adapter
        self._clock = clock
        self._lock = threading.Lock()
        self._auth: GarminAuth | None = None
        self._http: requests.Session | None = None
        self._environment: OriginSettings | None = None  # with `_http`
        self._expires_at: int | None = None
        self._refreshes = 0
        self._refresh_error: GarminError | None = None

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a connectapi path; every failure arrives classified as a `GarminError`."""
        try:
            return self._get(path, params)
        except Exception as exc:
            raise classify.failure(exc, []) from None

    @property
    def refreshed(self) -> bool:
        return self._refreshes > 0 and self._refresh_error is None

    def refreshed_session(self) -> str | None:
        with self._lock:
            if self._auth is None or not self.refreshed:
                return None
            return dump(self._auth)

    def _get(self, path: str, params: dict[str, Any] | None) -> Any:
        token, headers = self._token()
        seen, response = self._call(path, params, headers)
        if seen.status == 401:
            with self._lock:
                assert self._auth is not None
                if self._auth.di_token == token:  # nobody refreshed since this call began
                    if self._refresh_error is not None:
                        raise _refresh_failed_elsewhere()
                    if self._refreshes:
                        raise classify.verdict(seen) or AuthRejected("rejected after refresh")
                    self._refresh()
                headers = self._auth.get_api_headers()
            seen, response = self._call(path, params, headers)
        error = classify.verdict(seen)
        if error is not None:
            raise error
        if seen.status == 204 or not response.content:
            return None
        return response.json()

    def _token(self) -> tuple[str, dict[str, str]]:
        """The access token valid now and its headers (refreshed first when expiring)."""
        with self._lock:
            if self._auth is None:
                auth = new_auth(self._settings)
                self._expires_at = load(auth, self._stored)
                self._auth = auth
                self._http = self._new_http()
                proxy = self._settings.proxy_url
                self._environment = OriginSettings(
                    self._http, {"http": proxy, "https": proxy} if proxy else None)
            if self._refresh_error is not None:
                raise _refresh_failed_elsewhere()
            if self._expiring() and not self._refreshes:
                self._refresh()
            return str(self._auth.di_token), self._auth.get_api_headers()

    def _expiring(self) -> bool:
        margin = self._settings.di_refresh_margin_seconds
        return self._expires_at is not None and self._expires_at - margin <= self._clock()

    def _refresh(self) -> None:
        """ha-garmin's refresh, its answer recorded (called with the lock held)."""
        auth = self._auth
        assert auth is not None
        if not auth.di_refresh_token or not auth.di_client_id:
            self._refresh_error = AuthRejected("the stored session cannot be refreshed")
            raise self._refresh_error
        wire = Wire(self._settings, self._caller)
        with wire.active():
            try:
                auth._refresh_di_token()
            except Exception as exc:
                self._refresh_error = classify.failure(exc, wire.seen)
                self._told(False)
                raise self._refresh_error from None
        self._refreshes += 1
        self._expires_at = expiry_of(str(auth.di_token))
        self._told(True)

    def _told(self, worked: bool) -> None:
        if self._settings.on_refresh is not None:
            self._settings.on_refresh(worked)

    def _call(self, path: str, params: dict[str, Any] | None,
              headers: dict[str, str]) -> tuple[classify.Seen, requests.Response]:
        """One GET as ha-garmin's client makes it (plain requests, its native headers).

        Sent as `requests.Session.get` would send it, without the session layer's work on
        every call (merging settings and cookie jars, reading the environment): a data
        call's CPU went there. The request, its proxies, cookies, redirects, errors and the
        response are requests' own; the environment is read once per host per use.
        """
        assert self._auth is not None
        url = f"{self._auth.get_api_base_url()}{path}"
        try:
            target = routed_url(url, self._settings.base_url, self._settings.domain)
        except RoutingRefused:
            raise GarminProtocolError("refusing to send outside Garmin") from None
        if self._settings.base_url:
            headers = {**headers, SANDBOX_CALLER_HEADER: self._caller}
        try:
            assert self._environment is not None
            netrc = self._environment.netrc(target)
            settings = self._environment.settings(target)
            response = self._send(self._prepare(target, params, headers, netrc), settings)
        except requests.RequestException as exc:
            raise classify.verdict(classify.seen_failure("GET", url, exc)) or exc from None
        if response.status_code < 400:  # a data page is not parsed twice for a verdict
            return classify.Seen("GET", "connectapi", path, response.status_code), response
        return classify.seen_response("GET", url, response), response

    def _prepare(self, url: str, params: dict[str, Any] | None, headers: dict[str, str],
                 netrc: Any) -> requests.PreparedRequest:
        """The request `Session.prepare_request` builds, without its merges on every call:
        the session's headers under ours, a copy of its cookies, `~/.netrc` credentials."""
        assert self._http is not None
        merged = CaseInsensitiveDict(self._http.headers)
        merged.update(headers)
        request = requests.PreparedRequest()
        request.prepare_method("GET")
        request.prepare_url(url, params)
        request.prepare_headers({k: v for k, v in merged.items() if v is not None})
        if self._http.cookies:  # an empty jar adds no header
            request.prepare_cookies(merge_cookies(  # type: ignore[no-untyped-call]
                RequestsCookieJar(), self._http.cookies))
        request.prepare_auth(netrc)
        return request

    def _send(self, request: requests.PreparedRequest,
              settings: dict[str, Any]) -> requests.Response:
        """`Session.send`: the adapter, the use's cookies, requests' redirects, the body."""
        http = self._http
        assert http is not None
        options = {"timeout": self._settings.timeout_seconds, **settings}
        response = http.get_adapter(str(request.url)).send(request, **options)
        if response.cookies:  # what the adapter read from Set-Cookie
            http.cookies.update(response.cookies)
        if response.is_redirect:
            # the jar `prepare_request` leaves on a request, which redirects start from
            request._cookies = http.cookies.copy()  # type: ignore[attr-defined]
            history = [response, *http.resolve_redirects(response, request, **options)]
            response = history.pop()
            response.history = history
        response.content  # noqa: B018 - read it all, which returns the connection to the pool
        return response

    def _new_http(self) -> requests.Session:
        """This use's own requests session (cookies stay per user) on the engine's shared
        connection pool (sockets only); it reads the environment once per host."""
        http = EnvironmentSession()
        http.mount("https://", self._adapter)
        http.mount("http://", self._adapter)
        return http
