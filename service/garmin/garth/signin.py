"""The only module that touches garth: a hardened per-user client and the login steps.

garth 0.8.0 is deprecated upstream, so everything it does for us lives here behind a few
synchronous functions (run in the gateway's thread pool); replacing the engine means
rewriting this file. What this module guards against:

- `Client.request(headers={})` shares one mutable default dict between all clients and
  writes the Authorization header into it, so parallel threads send each other's tokens.
  `_Client.request` always passes a fresh dict.
- garth auto-loads sessions from `GARTH_HOME`/`GARTH_TOKEN` and writes plaintext tokens
  there; both are removed from the environment and `_auto_resume` is disabled.
- garth downloads its OAuth consumer from the internet unless one is set: `configure_consumer`.
- Errors arrive as `GarthHTTPError`, `GarthException`, raw `requests.HTTPError` (the OAuth1
  steps are not wrapped) and raw connection/timeout errors: `classify` maps them all.
- A client whose refresh failed may hold cleared or half-updated tokens: it is never dumped.

Cost per job matters (a sync job builds a client and makes a handful of calls), so a client
is built without garth's per-instance extras (a pydantic-settings telemetry object, two
retry adapters with their own connection pools), and the gateway's clients share one
`Transport`: a urllib3 connection pool and nothing else. Credentials never live in it: each
client keeps its own requests session (cookies, tokens), every request carries its own
fresh headers, and a pooled socket carries no state from one request to the next. The
environment's proxy settings are read once per host instead of on every request. A login
runs garth's SSO steps on `_LoginClient`, which prepares each request once and signs the
OAuth1 steps itself instead of going through requests' session layer.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

for _variable in ("GARTH_HOME", "GARTH_TOKEN"):
    os.environ.pop(_variable, None)

import garth  # noqa: E402
import garth.sso  # noqa: E402
import requests  # noqa: E402
from garth.auth_tokens import OAuth2Token  # noqa: E402
from garth.exc import GarthException, GarthHTTPError  # noqa: E402
from oauthlib.common import (  # type: ignore[import-untyped]  # noqa: E402
    generate_nonce,
    generate_timestamp,
    urldecode,
)
from oauthlib.oauth1.rfc5849 import (  # type: ignore[import-untyped]  # noqa: E402
    signature as oauth_signature,
)
from oauthlib.oauth1.rfc5849.utils import (  # type: ignore[import-untyped]  # noqa: E402
    escape as oauth_escape,
)
from oauthlib.oauth1.rfc5849.utils import unescape as oauth_unescape  # noqa: E402
from pydantic import ValidationError  # noqa: E402
from requests.adapters import BaseAdapter, HTTPAdapter  # noqa: E402
from requests.cookies import (  # noqa: E402
    create_cookie,
    extract_cookies_to_jar,
    get_cookie_header,
)
from requests.hooks import default_hooks  # noqa: E402
from requests.structures import CaseInsensitiveDict  # noqa: E402
from requests.utils import get_environ_proxies, get_netrc_auth, requote_uri  # noqa: E402
from urllib3.exceptions import TimeoutError as Urllib3Timeout  # noqa: E402
from urllib3.util.retry import Retry  # noqa: E402

from service.garmin.errors import (  # noqa: E402
    AuthRejected,
    GarminError,
    GarminProtocolError,
    GarminUnavailable,
    InvalidCredentials,
    MfaChallengeLost,
    MfaCodeInvalid,
    RateLimited,
)

T = TypeVar("T")

SANDBOX_CALLER_HEADER = "X-Sandbox-Caller"
MFA_STATE_VERSION = 1


@dataclass(frozen=True)
class GarminSettings:
    """What the adapter needs from configuration (kept free of the config module's types)."""

    domain: str = "garmin.com"
    base_url: str = ""
    timeout_seconds: float = 15.0
    retries: int = 2
    # told of every OAuth2 refresh (True when it worked), e.g. to count them
    on_refresh: Callable[[bool], None] | None = field(default=None, compare=False)


def configure_consumer(key: str, secret: str) -> None:
    """Give garth its OAuth consumer so it never fetches one from the internet."""
    if key and secret:
        garth.sso.OAUTH_CONSUMER = {"consumer_key": key, "consumer_secret": secret}


# --- transport --------------------------------------------------------------------------


def _retry_policy(retries: int) -> Retry:
    """Retry connection failures and idempotent 502-504 a few times, nothing else.

    Never 429 (urllib3 would otherwise sleep on Retry-After and retry, which extends
    Garmin's block) and never a POST (a login must not be sent twice).
    """
    return Retry(
        total=retries,
        connect=retries,
        read=0,
        status=retries,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        backoff_factor=0.2,
        respect_retry_after_header=False,
        raise_on_status=False,
    )


class Transport:
    """Connection pools shared by many clients: sockets to Garmin, never credentials.

    One per gateway (sized to its thread pool, so no thread waits for or discards a
    connection). A job then reuses a warm connection instead of opening one; cookies and
    tokens stay in each client's own session, and each request carries its own headers.
    """

    def __init__(self, retries: int, pool_size: int = 10) -> None:
        self.adapter = HTTPAdapter(pool_connections=10, pool_maxsize=max(pool_size, 1),
                                   max_retries=_retry_policy(retries))

    def close(self) -> None:
        self.adapter.close()


@functools.lru_cache(maxsize=16)
def _host_pattern(domain: str) -> re.Pattern[str]:
    return re.compile(rf"^https://([a-z0-9.-]+)\.{re.escape(domain)}(?::443)?(/.*)?$")


class _ClientAdapter(BaseAdapter):
    """One client's adapter: routes (sandbox), tags the caller, sends over a transport.

    With `base_url` set, `https://<sub>.<domain><path>` goes to `<base_url>/<sub><path>` (the
    sandbox) and the caller header lets the sandbox prove that no request carried another
    user's token. Mounted on the client's session, so garth's OAuth1 sessions (which reuse
    the parent's adapter) are routed too. Closing it leaves a shared transport open.
    """

    def __init__(self, transport: Transport, owned: bool, base_url: str, domain: str,
                 caller: str) -> None:
        super().__init__()
        self._transport = transport
        self._owned = owned
        self._base_url = base_url.rstrip("/")
        self._host = _host_pattern(domain) if base_url else None
        self._caller = caller

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: bool | str = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        if self._host is not None:
            match = self._host.match(request.url or "")
            if match is None:
                raise requests.ConnectionError(
                    f"refusing to route {urlsplit(str(request.url)).netloc}")
            request = request.copy()
            request.url = f"{self._base_url}/{match.group(1)}{match.group(2) or '/'}"
            request.headers[SANDBOX_CALLER_HEADER] = self._caller
        return self._transport.adapter.send(request, stream=stream, timeout=timeout,
                                            verify=verify, cert=cert, proxies=proxies)

    def close(self) -> None:
        if self._owned:
            self._transport.close()


@functools.lru_cache(maxsize=64)
def _environment_proxies(origin: str) -> tuple[tuple[str, str], ...]:
    """`HTTPS_PROXY`/`NO_PROXY` & co. for one scheme://host, read once per process."""
    return tuple(get_environ_proxies(origin).items())


def _ca_bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


class _Session(requests.Session):
    """A requests session that reads the environment's proxies once per host.

    With `trust_env` on, requests scans the whole environment for proxy settings on every
    request. It is off here, and what it did is done below instead: the proxies (cached
    per scheme and host), the CA bundle, and `~/.netrc` credentials, as before.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if request.auth is None and self.auth is None:
            request.auth = get_netrc_auth(request.url)
        return super().prepare_request(request)

    def merge_environment_settings(self, url: str | bytes | None, proxies: Any, stream: Any,
                                   verify: Any, cert: Any) -> Any:
        text = url.decode() if isinstance(url, bytes) else str(url)
        if proxies is not None:
            no_proxy = proxies.get("no_proxy")
            if no_proxy is None:
                parts = urlsplit(text)
                found = _environment_proxies(f"{parts.scheme}://{parts.netloc}")
            else:
                found = tuple(get_environ_proxies(text, no_proxy=no_proxy).items())
            for key, value in found:
                proxies.setdefault(key, value)
        if verify is True or verify is None:
            verify = _ca_bundle() or verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


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
        self.sess = _Session()
        self.sess.headers.update(garth.http.USER_AGENT)
        self._mount()

    def _mount(self) -> None:
        adapter = _ClientAdapter(self._transport, self._owned, self._settings.base_url,
                                 self.domain, self._caller)
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


# --- error classification ---------------------------------------------------------------


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


def _classify_http(response: requests.Response | None) -> GarminError:
    status = response.status_code if response is not None else 0
    stage = _stage_of(response)
    if response is not None and status == 429:
        return RateLimited(f"Garmin rate limit ({stage})", retry_after=_retry_after(response))
    if status >= 500 or status == 408:
        return GarminUnavailable(f"Garmin answered {status} ({stage})")
    if stage == "login" and status in (400, 401, 403):
        # a 403 is also Cloudflare or a sign-in session Garmin lost (its sign-in page broke):
        # only a 401 or Garmin's own verdict means the password is wrong
        kind = _sso_error_type(response)
        if status == 401 or "INVALID_USERNAME_PASSWORD" in kind or "ACCOUNT" in kind:
            return InvalidCredentials("Garmin rejected the username or password")
        return GarminProtocolError(f"unexpected Garmin answer {status} ({stage})")
    if stage == "mfa" and status in (400, 401, 403):
        return MfaChallengeLost("Garmin no longer accepts this MFA challenge")
    if stage in ("exchange", "api") and status in (401, 403):
        return AuthRejected(f"Garmin rejected the session ({stage} {status})")
    return GarminProtocolError(f"unexpected Garmin answer {status} ({stage})")


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


# --- sessions ---------------------------------------------------------------------------


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


@dataclass
class Usage(Generic[T]):
    """What one use of a stored session produced, and the session to write back if any."""

    value: T
    refreshed_session: str | None


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


# --- login ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    """Either `session` (logged in) or `mfa_state` + `mfa_method` (a code is needed)."""

    session: str | None = None
    mfa_state: str | None = None
    mfa_method: str | None = None


class _LoginClient(_Client):
    """A client for one login or MFA step: garth's SSO requests without requests' session
    layer.

    Through `requests.Session.request` each of a login's five requests paid for merging
    settings, copying the cookie jar twice, hooks and netrc, and the two OAuth1 steps each
    built a session of their own that scanned the environment for proxies on every
    request. Here a request is prepared once, as requests would prepare it (the same URL,
    headers, body, cookies of this client only, fresh headers every time), and handed to
    the client's adapter: routing, the shared transport, errors and the response are
    requests' own. Proxies, CA bundle and `~/.netrc` are read once per host per login. A
    redirect, which the SSO flow does not get, is followed by requests itself.
    """

    def __init__(self, settings: GarminSettings, caller: str,
                 transport: Transport | None = None) -> None:
        super().__init__(settings, caller, transport)
        self._environments: dict[str, dict[str, Any]] = {}
        self._netrc: dict[str, Any] = {}

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
        """garth's `Client.request` for the SSO steps (sign-in, login, MFA, embed)."""
        if api or not set(kwargs) <= {"params", "json"}:
            return super().request(method, subdomain, path, api=api, referrer=referrer,
                                   headers=headers, **kwargs)
        fresh = dict(headers or {})
        if referrer is True and self.last_resp:
            fresh["referer"] = self.last_resp.url
        url = urljoin(f"https://{subdomain}.{self.domain}", path)
        request = self._prepare(method, url, fresh, params=kwargs.get("params"),
                                json_body=kwargs.get("json"))
        self.last_resp = self._send(request, url, keep_cookies=True)
        try:
            self.last_resp.raise_for_status()
        except requests.HTTPError as exc:
            raise GarthHTTPError(msg="Error in request", error=exc) from exc
        return self.last_resp

    def _environment(self, url: str) -> dict[str, Any]:
        """Proxies, CA bundle and certificate for one origin, merged once per login."""
        origin = _origin(url)
        found = self._environments.get(origin)
        if found is None:
            merged = self.sess.merge_environment_settings(url, {}, None, None, None)
            found = self._environments[origin] = dict(merged)
        return found

    def _netrc_auth(self, url: str) -> Any:
        """`~/.netrc` credentials for one origin, looked up once per login."""
        origin = _origin(url)
        if origin not in self._netrc:
            self._netrc[origin] = get_netrc_auth(url)
        return self._netrc[origin]

    def _prepare(self, method: str, url: str, headers: dict[str, str], *,
                 params: dict[str, Any] | None = None, json_body: Any = None,
                 form: dict[str, str] | None = None,
                 oauth1: _OAuth1Credentials | None = None) -> requests.PreparedRequest:
        """The request `Session.prepare_request` would build, without its merges.

        Without `oauth1` it is garth's SSO step: `~/.netrc` applies, as it did. The
        OAuth1 steps are signed instead (OAuth1Session never consulted `~/.netrc`).
        """
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params, doseq=True)}"
        request = requests.PreparedRequest()
        request.prepare_method(method)
        request.url = requote_uri(url)
        merged = CaseInsensitiveDict(self.sess.headers)
        merged.update(headers)
        request.prepare_headers({k: v for k, v in merged.items() if v is not None})
        form_body = urlencode(form) if form else None
        request.prepare_body(form_body, None, json_body)
        cookie = get_cookie_header(self.sess.cookies, request)  # type: ignore[no-untyped-call]
        if cookie is not None:
            request.headers["Cookie"] = cookie
        request.hooks = default_hooks()
        if oauth1 is not None:
            if form_body is not None:  # requests_oauthlib hands the form body on as bytes
                request.body = form_body.encode()
            request.headers["Authorization"] = _oauth1_authorization(
                request.method or method, request.url, form_body, oauth1)
        else:
            netrc = self._netrc_auth(url)
            if netrc is not None:
                request.prepare_auth(netrc)
        return request

    def _send(self, request: requests.PreparedRequest, url: str, *, keep_cookies: bool,
              redirects: Callable[[], requests.Session] | None = None) -> requests.Response:
        """`Session.send` for one prepared request: the adapter, cookies, redirects, body.

        `keep_cookies` False is an OAuth1 step: its session was a copy, so what Garmin
        set there never reached the client's cookies. `redirects` is that session.
        """
        settings = self._environment(url)
        verify = settings["verify"]
        options: dict[str, Any] = {
            "timeout": self.timeout, "verify": True if verify is None else verify,
            "cert": settings["cert"], "proxies": settings["proxies"]}
        response = self.sess.get_adapter(request.url or url).send(request, stream=False,
                                                                   **options)
        if keep_cookies:
            extract_cookies_to_jar(  # type: ignore[no-untyped-call]
                self.sess.cookies, request, response.raw)
        if response.is_redirect:
            session = self.sess if redirects is None else redirects()
            if not keep_cookies:
                extract_cookies_to_jar(  # type: ignore[no-untyped-call]
                    session.cookies, request, response.raw)
            # the jar `prepare_request` leaves on a request, which redirects start from
            request._cookies = session.cookies.copy()  # type: ignore[attr-defined]
            history = [response, *session.resolve_redirects(response, request, stream=False,
                                                             **options)]
            response = history.pop()
            response.history = history
        response.content  # noqa: B018 - read it all, which returns the connection to the pool
        return response

    def _oauth1(self, method: str, url: str, headers: dict[str, str], token: str | None,
                secret: str | None, form: dict[str, str] | None = None) -> requests.Response:
        """A request signed with garth's consumer (and `token`), as its OAuth1 session did."""
        consumer = self._consumer()
        credentials = _OAuth1Credentials(consumer["consumer_key"], consumer["consumer_secret"],
                                         token, secret)
        request = self._prepare(method, url, headers, form=form, oauth1=credentials)

        def session() -> requests.Session:
            return garth.sso.GarminOAuth1Session(
                resource_owner_key=token, resource_owner_secret=secret, parent=self.sess)

        response = self._send(request, url, keep_cookies=False, redirects=session)
        response.raise_for_status()
        return response

    def _consumer(self) -> dict[str, str]:
        """garth's OAuth consumer; garth itself fetches it when none is configured."""
        if not garth.sso.OAUTH_CONSUMER:
            garth.sso.GarminOAuth1Session(parent=self.sess)
        return garth.sso.OAUTH_CONSUMER


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class _OAuth1Credentials:
    consumer_key: str
    consumer_secret: str
    token: str | None
    token_secret: str | None

    def __repr__(self) -> str:  # never the secrets
        return f"_OAuth1Credentials(consumer_key={self.consumer_key!r}, token=...)"


def _oauth1_authorization(method: str, url: str, form_body: str | None,
                          credentials: _OAuth1Credentials, nonce: str | None = None,
                          timestamp: str | None = None) -> str:
    """The `Authorization: OAuth ...` header requests_oauthlib's `OAuth1` puts on a request
    (HMAC-SHA1, in the header, RFC 5849 section 3.4), computed directly.

    oauthlib renders the header, parses it back to collect the parameters and escapes each
    one several times; this builds the same parameters once, in the same order, with the
    same nonce and timestamp and oauthlib's own escaping and base string.
    """
    oauth = [
        ("oauth_nonce", nonce or generate_nonce()),
        ("oauth_timestamp", timestamp or generate_timestamp()),
        ("oauth_version", "1.0"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_consumer_key", credentials.consumer_key),
    ]
    if credentials.token:
        oauth.append(("oauth_token", credentials.token))
    # the query's and the form body's parameters, as oauthlib collects them
    query = urlsplit(url).query
    carried = [
        (key, oauth_unescape(value) if key.startswith("oauth_") else value)
        for key, value in [*(urldecode(query) if query else []),
                           *(urldecode(form_body) if form_body else [])]
        if key != "oauth_signature"
    ]
    pairs = sorted((oauth_escape(key), oauth_escape(value)) for key, value in [*carried, *oauth])
    base = oauth_signature.signature_base_string(
        method.upper(), oauth_signature.base_string_uri(url),
        "&".join(f"{key}={value}" for key, value in pairs))
    key = (f"{oauth_escape(credentials.consumer_secret or '')}&"
           f"{oauth_escape(credentials.token_secret or '')}")
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
    oauth.append(("oauth_signature", base64.b64encode(digest).decode()))
    return "OAuth " + ", ".join(f'{oauth_escape(k)}="{oauth_escape(v)}"' for k, v in oauth)


def _sso_login(client: _LoginClient, username: str, password: str) -> tuple[Any, Any]:
    """garth 0.8.0's `sso.login(..., return_on_mfa=True)`, step for step.

    Returns the OAuth1 and OAuth2 tokens, or ("needs_mfa", {"login_params", "mfa_method"}).
    """
    sso = garth.sso
    login_params = {
        "clientId": sso.CLIENT_ID,
        "locale": "en-US",
        "service": f"https://mobile.integration.{client.domain}/gcm/android",
    }
    client.get("sso", "/mobile/sso/en/sign-in", params={"clientId": sso.CLIENT_ID},
               headers={**sso.SSO_PAGE_HEADERS, "Sec-Fetch-Site": "none"})
    client.post("sso", "/mobile/api/login", params=login_params,
                headers=dict(sso.SSO_PAGE_HEADERS),
                json={"username": username, "password": password, "rememberMe": False,
                      "captchaToken": ""})
    answer = client.last_resp.json()
    kind = answer.get("responseStatus", {}).get("type")
    if kind == sso.SSO_SUCCESSFUL:
        return _complete_login(client, answer["serviceTicketId"])
    if kind == sso.SSO_MFA_REQUIRED:
        mfa_info = answer.get("customerMfaInfo") or {}
        return "needs_mfa", {"login_params": login_params,
                             "mfa_method": mfa_info.get("mfaLastMethodUsed") or "email"}
    sso._parse_sso_response(answer, sso.SSO_SUCCESSFUL)
    raise GarthException(msg="Unexpected SSO response")


def _complete_login(client: _LoginClient, ticket: str) -> tuple[Any, Any]:
    """garth 0.8.0's `sso._complete_login`: the embed page, then the two OAuth1 steps."""
    sso = garth.sso
    # a load-balancer cookie, best effort: garth ignores Garmin's error answers here
    with contextlib.suppress(GarthException):
        client.get("sso", "/portal/sso/embed",
                   headers={**sso.SSO_PAGE_HEADERS, "Sec-Fetch-Site": "same-origin"},
                   referrer=True)
    base_url = f"https://connectapi.{client.domain}/oauth-service/oauth/"
    login_url = f"https://mobile.integration.{client.domain}/gcm/android"
    response = client._oauth1(
        "GET", f"{base_url}preauthorized?ticket={ticket}&login-url={login_url}"
               "&accepts-mfa-tokens=true",
        dict(sso.OAUTH_USER_AGENT), None, None)
    fields: dict[str, Any] = {key: values[0] for key, values in parse_qs(response.text).items()}
    oauth1 = garth.auth_tokens.OAuth1Token(domain=client.domain, **fields)
    form = {"audience": "GARMIN_CONNECT_MOBILE_ANDROID_DI"}
    if oauth1.mfa_token:
        form["mfa_token"] = oauth1.mfa_token
    response = client._oauth1(
        "POST", f"{base_url}exchange/user/2.0",
        {**sso.OAUTH_USER_AGENT, "Content-Type": "application/x-www-form-urlencoded"},
        oauth1.oauth_token, oauth1.oauth_token_secret, form=form)
    oauth2 = OAuth2Token(**sso.set_expirations(response.json()))
    return oauth1, oauth2


def _dump_cookies(client: _Client) -> list[dict[str, Any]]:
    return [
        {
            "name": cookie.name,
            "value": cookie.value,
            "domain": cookie.domain,
            "path": cookie.path,
            "expires": cookie.expires,
            "secure": cookie.secure,
        }
        for cookie in client.sess.cookies
    ]


def _dump_mfa_state(client: _Client, login_params: dict[str, Any], method: str) -> str:
    """Everything needed to finish the login in another process: the SSO cookies above all."""
    return json.dumps(
        {
            "v": MFA_STATE_VERSION,
            "domain": client.domain,
            "login_params": login_params,
            "mfa_method": method,
            "cookies": _dump_cookies(client),
        }
    )


def _restore_mfa_client(settings: GarminSettings, caller: str, state: dict[str, Any],
                        transport: Transport | None = None) -> _LoginClient:
    if state.get("v") != MFA_STATE_VERSION or state.get("domain") != settings.domain:
        raise MfaChallengeLost("the pending MFA challenge is from another configuration")
    client = _LoginClient(settings, caller, transport)
    for cookie in state["cookies"]:
        client.sess.cookies.set_cookie(create_cookie(**cookie))  # type: ignore[no-untyped-call]
    return client


def login(settings: GarminSettings, caller: str, username: str, password: str,
          transport: Transport | None = None) -> LoginResult:
    """Garmin SSO sign-in on a fresh client: a session, or a resumable MFA challenge."""
    client = _LoginClient(settings, caller, transport)
    try:
        result = _sso_login(client, username, password)
        if result[0] == "needs_mfa":
            details = result[1]
            method = str(details.get("mfa_method") or "email")
            return LoginResult(
                mfa_state=_dump_mfa_state(client, details["login_params"], method),
                mfa_method=method,
            )
        client.configure(oauth1_token=result[0], oauth2_token=result[1])
        return LoginResult(session=client.dumps())
    except Exception as exc:
        raise classify(exc) from None


def resume_mfa(settings: GarminSettings, caller: str, mfa_state: str, code: str,
               transport: Transport | None = None) -> str:
    """Finish a login with the MFA code; returns the session.

    A wrong code raises `MfaCodeInvalid` carrying the (possibly updated) challenge, so the
    user can try again from any replica.
    """
    try:
        state = json.loads(mfa_state)
    except ValueError:
        raise MfaChallengeLost("the pending MFA challenge cannot be read") from None
    client = _restore_mfa_client(settings, caller, state, transport)
    try:
        ticket = garth.sso.handle_mfa(client, state["login_params"], lambda: code,
                                      mfa_method=state["mfa_method"])
        oauth1, oauth2 = _complete_login(client, ticket)
    except Exception as exc:
        error = classify(exc)
        if isinstance(error, MfaCodeInvalid):
            error.mfa_state = _dump_mfa_state(client, state["login_params"], state["mfa_method"])
        raise error from None
    client.configure(oauth1_token=oauth1, oauth2_token=oauth2, domain=client.domain)
    return str(client.dumps())
