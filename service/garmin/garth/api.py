"""The per-user garth client and a stored session in use (`GarminApi`).

A client serves one user and one operation; it is never shared and never module-level. It
is built without garth's per-instance extras (a pydantic-settings telemetry object, two retry
adapters with their own connection pools): a sync job builds one and makes a handful of
calls. What it guards against:

- `Client.request(headers={})` shares one mutable default dict between all clients and
  writes the Authorization header into it, so parallel threads send each other's tokens.
  `_Client.request` always passes a fresh dict.
- garth auto-loads sessions from `GARTH_HOME`/`GARTH_TOKEN`: `_auto_resume` is disabled
  (and the package removes both variables from the environment before importing garth).
- A client whose refresh failed may hold cleared or half-updated tokens: it is never dumped.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlencode

import garth
import garth.sso
import requests
from garth.auth_tokens import OAuth2Token
from garth.exc import GarthHTTPError
from pydantic import ValidationError
from requests.hooks import default_hooks
from requests.utils import requote_uri

from service.garmin.engine import GarminSettings
from service.garmin.environment import EnvironmentSession
from service.garmin.errors import (
    AuthRejected,
    GarminError,
    GarminProtocolError,
    GarminUnavailable,
)
from service.garmin.garth.classify import classify
from service.garmin.garth.transport import Transport, _ClientAdapter


def configure_consumer(key: str, secret: str) -> None:
    """Give garth its OAuth consumer so it never fetches one from the internet."""
    if key and secret:
        garth.sso.OAUTH_CONSUMER = {"consumer_key": key, "consumer_secret": secret}


class _Client(garth.Client):
    """A garth client for one user and one operation; never shared, never module-level.

    Built without `garth.Client.__init__`: its telemetry object (a pydantic-settings read
    of the environment, always disabled here) and retry adapters cost more than the calls
    of a short job, and the adapter is ours anyway.
    """

    def __init__(self, settings: GarminSettings, caller: str,
                 transport: Transport | None = None) -> None:
        self._settings = settings
        self._caller = caller
        self._owned = transport is None
        self._transport = transport or Transport(settings.retries)
        self.refreshes = 0
        self.refresh_failed = False
        self.timeout = settings.timeout_seconds  # type: ignore[assignment]
        self.retries = settings.retries
        self.domain = settings.domain
        self._garth_home = None
        self._api_settings: tuple[str, dict[str, Any]] | None = None
        self.sess = EnvironmentSession()
        self.sess.headers.update(garth.http.USER_AGENT)
        self._mount()

    def _mount(self) -> None:
        adapter = _ClientAdapter(self._transport, self._owned, self._settings.base_url,
                                 self.domain, self._caller, self._settings.proxy_url)
        self.sess.mount("https://", adapter)
        self.sess.mount("http://", adapter)

    def _auto_resume(self) -> None:
        """Disabled: sessions come from our database only, never from GARTH_HOME/TOKEN."""

    def configure(  # type: ignore[override]
        self,
        /,
        oauth1_token: garth.auth_tokens.OAuth1Token | None = None,
        oauth2_token: garth.auth_tokens.OAuth2Token | None = None,
        domain: str | None = None,
        **unsupported: Any,
    ) -> None:
        """The part of garth's `configure` that garth itself calls (loads(), logins).

        Transport settings come from `GarminSettings` only, and telemetry stays off.
        """
        if unsupported:
            raise TypeError(f"unsupported client settings: {sorted(unsupported)}")
        if oauth1_token is not None:
            self.oauth1_token = oauth1_token
        if oauth2_token is not None:
            self.oauth2_token = oauth2_token
        if domain and domain != self.domain:
            self.domain = domain
            self._mount()

    def request(
        self,
        method: str,
        subdomain: str,
        path: str,
        /,
        api: bool = False,
        referrer: str | bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Always a fresh headers dict: garth's shared default leaks tokens across users."""
        return super().request(
            method, subdomain, path, api=api, referrer=referrer,
            headers=dict(headers or {}), **kwargs,
        )

    def api_get(self, path: str, params: dict[str, Any] | None, token: OAuth2Token) -> Any:
        """garth's `connectapi(path, params=...)` GET, without requests' session layer.

        A sync job's calls are all authenticated GETs, and requests' per-request session
        work (merging settings, preparing, hooks, redirect handling) cost more CPU than
        the rest of the call. This builds the same request garth would (its headers, a
        fresh Authorization header, the same URL and timeout) and hands it to the
        session's adapter, so routing, retries, proxies, errors and the response are
        requests' own; only `~/.netrc` is not consulted (its credentials would replace the
        bearer token). A redirect, which a data call never gets, is redone the garth way.
        `token` is one the caller made sure is valid (`GarminApi` refreshes, once for all of
        a user's parallel calls).
        """
        assert self.oauth1_token, "OAuth1 token is required for API requests"
        url = f"https://connectapi.{self.domain}{path}"
        if params:
            url = f"{url}&{urlencode(params)}" if "?" in url else f"{url}?{urlencode(params)}"
        url = requote_uri(url)
        request = requests.PreparedRequest()
        request.method = "GET"
        request.url = url
        request.prepare_headers({**self.sess.headers, "Authorization": str(token)})
        request.body = None
        request.hooks = default_hooks()
        if self.sess.cookies:
            request.prepare_cookies(self.sess.cookies)
        settings = self._settings_for_api()
        verify = settings["verify"]
        response = self.sess.get_adapter(url).send(
            request, timeout=self.timeout, verify=True if verify is None else verify,
            cert=settings["cert"], proxies=settings["proxies"])
        response.content  # noqa: B018 - read it all, which returns the connection to the pool
        if response.cookies:
            self.sess.cookies.update(response.cookies)
        if response.is_redirect:
            return self.connectapi(path, params=params)
        self.last_resp = response
        try:
            response.raise_for_status()
        except requests.HTTPError as exc:
            raise GarthHTTPError(msg="Error in request", error=exc) from exc
        if response.status_code == 204:
            return None
        return response.json()

    def valid_token(self) -> OAuth2Token:
        """The OAuth2 token after a refresh (garth types it loosely)."""
        token = self.oauth2_token
        if not isinstance(token, OAuth2Token):
            raise GarminProtocolError("Garmin's token exchange gave no OAuth2 token")
        return token

    def _settings_for_api(self) -> dict[str, Any]:
        """Proxies, CA bundle and certificate for connectapi, merged once per client."""
        if self._api_settings is None or self._api_settings[0] != self.domain:
            merged = self.sess.merge_environment_settings(
                f"https://connectapi.{self.domain}/", {}, None, None, None)
            self._api_settings = (self.domain, dict(merged))
        return self._api_settings[1]

    def refresh_oauth2(self) -> None:
        """Count refreshes, and remember a failed one: such a client must not be persisted."""
        try:
            super().refresh_oauth2()  # type: ignore[no-untyped-call]
        except BaseException:
            self.refresh_failed = True
            if self._settings.on_refresh is not None:
                self._settings.on_refresh(False)
            raise
        self.refreshes += 1
        if self._settings.on_refresh is not None:
            self._settings.on_refresh(True)


def _load(settings: GarminSettings, caller: str, session: str,
          transport: Transport | None = None) -> _Client:
    client = _Client(settings, caller, transport)
    try:
        client.loads(session)
    except (ValueError, TypeError, KeyError, ValidationError):
        raise AuthRejected("the stored session cannot be read") from None
    if not isinstance(client.oauth1_token, garth.auth_tokens.OAuth1Token):
        raise AuthRejected("the stored session has no OAuth1 token")
    return client


def _session_to_persist(client: _Client, before: str) -> str | None:
    """The dumped session if garth refreshed it successfully; never after a failed refresh."""
    if client.refresh_failed or client.refreshes == 0:
        return None
    after: str = client.dumps()
    return after if after != before else None


def _refresh_failed_elsewhere() -> GarminError:
    """Not definitive: the parallel call whose refresh failed raises the real reason."""
    return GarminUnavailable("the session's refresh failed in a parallel call")


class GarminApi:
    """One user's stored session in use: authenticated Garmin Connect GETs that several pool
    threads may make at once (a job fans a user's calls out).

    The client is loaded on the first call, inside the pool, so garth never runs on the event
    loop. Token refreshes are serialised: a call whose token was already replaced by another
    call's refresh retries with the new token instead of refreshing again, and nothing
    refreshes after a failed refresh (such a client is never persisted either).
    """

    def __init__(self, settings: GarminSettings, caller: str, session: str,
                 transport: Transport | None = None) -> None:
        self._settings = settings
        self._caller = caller
        self._session = session
        self._transport = transport
        self._client: _Client | None = None
        self._lock = threading.Lock()

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a connectapi path; every failure arrives classified as a `GarminError`."""
        try:
            return self._get(path, params)
        except Exception as exc:
            raise classify(exc) from None

    @property
    def refreshed(self) -> bool:
        """A refresh succeeded (read without the lock, so cheap: `refreshed_session` decides)."""
        client = self._client
        return client is not None and client.refreshes > 0

    def refreshed_session(self) -> str | None:
        """The session to write back: only after a successful refresh, never after a failed one."""
        with self._lock:
            return None if self._client is None else _session_to_persist(self._client,
                                                                          self._session)

    def _get(self, path: str, params: dict[str, Any] | None) -> Any:
        """A 401 is retried once after a forced refresh: Garmin can drop an access token
        before its stated expiry; only a 401 after a successful refresh (or a rejected
        refresh) means the session is really gone."""
        client, token = self._token()
        try:
            return client.api_get(path, params, token)
        except GarthHTTPError as exc:
            response = exc.error.response
            if response is None or response.status_code != 401:
                raise
            with self._lock:
                if client.oauth2_token is token:  # nobody refreshed since this call began
                    if client.refresh_failed:  # that call reports why; this 401 proves nothing
                        raise _refresh_failed_elsewhere() from None
                    if client.refreshes:
                        raise
                    client.refresh_oauth2()
                token = client.valid_token()
        return client.api_get(path, params, token)

    def _token(self) -> tuple[_Client, OAuth2Token]:
        """The loaded client and a token valid now (refreshed here when expired)."""
        with self._lock:
            if self._client is None:
                self._client = _load(self._settings, self._caller, self._session,
                                     self._transport)
            client = self._client
            if client.refresh_failed:
                raise _refresh_failed_elsewhere()
            if not isinstance(client.oauth2_token, OAuth2Token) or client.oauth2_token.expired:
                client.refresh_oauth2()
            return client, client.valid_token()
