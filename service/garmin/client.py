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
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

for _variable in ("GARTH_HOME", "GARTH_TOKEN"):
    os.environ.pop(_variable, None)

import garth  # noqa: E402
import garth.sso  # noqa: E402
import requests  # noqa: E402
from garth.exc import GarthException, GarthHTTPError  # noqa: E402
from pydantic import ValidationError  # noqa: E402
from requests.adapters import HTTPAdapter  # noqa: E402
from requests.cookies import create_cookie  # noqa: E402
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
PROFILE_PATH = "/userprofile-service/socialProfile"
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


class _RoutingAdapter(HTTPAdapter):
    """Sends `https://<sub>.<domain><path>` to `<base_url>/<sub><path>` (the sandbox).

    Mounted on each client's session, so garth's OAuth1 sessions (which reuse the parent's
    adapter) are routed too. The caller header lets the sandbox prove that no request
    carried another user's token.
    """

    def __init__(self, base_url: str, domain: str, caller: str, retries: int) -> None:
        super().__init__(max_retries=_retry_policy(retries))
        self._base_url = base_url.rstrip("/")
        self._host = re.compile(rf"^https://([a-z0-9.-]+)\.{re.escape(domain)}(?::443)?(/.*)?$")
        self._caller = caller

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        match = self._host.match(request.url or "")
        if match is None:
            raise requests.ConnectionError(f"refusing to route {urlsplit(str(request.url)).netloc}")
        routed = request.copy()
        routed.url = f"{self._base_url}/{match.group(1)}{match.group(2) or '/'}"
        routed.headers[SANDBOX_CALLER_HEADER] = self._caller
        return super().send(routed, *args, **kwargs)


class _Client(garth.Client):
    """A garth client for one user and one operation; never shared, never module-level."""

    def __init__(self, settings: GarminSettings, caller: str) -> None:
        self._settings = settings
        self._caller = caller
        self.refreshes = 0
        self.refresh_failed = False
        self.timeout = settings.timeout_seconds  # type: ignore[assignment]
        self.retries = settings.retries
        super().__init__(domain=settings.domain, telemetry_enabled=False)
        self._garth_home = None

    def _auto_resume(self) -> None:
        """Disabled: sessions come from our database only, never from GARTH_HOME/TOKEN."""

    def configure(self, /, **kwargs: Any) -> None:  # type: ignore[override]
        """garth re-mounts its own adapter on every configure (loads() too): mount ours after."""
        super().configure(**kwargs)
        settings = self._settings
        adapter: HTTPAdapter
        if settings.base_url:
            adapter = _RoutingAdapter(
                settings.base_url, self.domain, self._caller, settings.retries
            )
        else:
            adapter = HTTPAdapter(max_retries=_retry_policy(settings.retries))
        self.sess.mount("https://", adapter)

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


def _load(settings: GarminSettings, caller: str, session: str) -> _Client:
    client = _Client(settings, caller)
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


class GarminApi:
    """What a job may do with a loaded session: authenticated Garmin Connect calls."""

    def __init__(self, client: _Client, cancelled: threading.Event | None = None) -> None:
        self._client = client
        self._cancelled = cancelled

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a connectapi path; a 401 is retried once after a forced refresh.

        Garmin can drop an access token before its stated expiry; only a 401 after a
        successful refresh (or a rejected refresh) means the session is really gone.
        No new call starts once the job was cancelled (nobody waits for its result).
        """
        if self._cancelled is not None and self._cancelled.is_set():
            raise GarminUnavailable("the job was cancelled")
        try:
            return self._client.connectapi(path, params=params)
        except GarthHTTPError as exc:
            response = exc.error.response
            if response is None or response.status_code != 401 or self._client.refreshes:
                raise
        self._client.refresh_oauth2()
        return self._client.connectapi(path, params=params)


def use_session(
    settings: GarminSettings, caller: str, session: str, work: Callable[[GarminApi], T],
    cancelled: threading.Event | None = None,
) -> Usage[T]:
    """Load-Use: run `work` on a fresh client loaded from `session`.

    On failure the classified error carries the refreshed session when a refresh succeeded
    before the failure, so the caller can still write it back.
    """
    client = _load(settings, caller, session)
    try:
        value = work(GarminApi(client, cancelled))
    except Exception as exc:
        error = classify(exc)
        error.refreshed_session = _session_to_persist(client, session)
        if isinstance(error, AuthRejected):
            error.refreshed_session = None
        raise error from None
    return Usage(value, _session_to_persist(client, session))


def validate(settings: GarminSettings, caller: str, session: str) -> Usage[dict[str, Any]]:
    """A cheap authenticated call (the social profile) proving the session still works."""

    def fetch_profile(api: GarminApi) -> dict[str, Any]:
        profile = api.get(PROFILE_PATH)
        if not isinstance(profile, dict):
            raise GarminProtocolError("Garmin sent a profile of an unexpected shape")
        return profile

    return use_session(settings, caller, session, fetch_profile)


# --- login ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    """Either `session` (logged in) or `mfa_state` + `mfa_method` (a code is needed)."""

    session: str | None = None
    mfa_state: str | None = None
    mfa_method: str | None = None


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


def _restore_mfa_client(settings: GarminSettings, caller: str, state: dict[str, Any]) -> _Client:
    if state.get("v") != MFA_STATE_VERSION or state.get("domain") != settings.domain:
        raise MfaChallengeLost("the pending MFA challenge is from another configuration")
    client = _Client(settings, caller)
    for cookie in state["cookies"]:
        client.sess.cookies.set_cookie(create_cookie(**cookie))  # type: ignore[no-untyped-call]
    return client


def login(settings: GarminSettings, caller: str, username: str, password: str) -> LoginResult:
    """Garmin SSO sign-in on a fresh client: a session, or a resumable MFA challenge."""
    client = _Client(settings, caller)
    try:
        result = client.login(  # type: ignore[no-untyped-call]
            username, password, return_on_mfa=True
        )
        if result[0] == "needs_mfa":
            details = result[1]
            method = str(details.get("mfa_method") or "email")
            return LoginResult(
                mfa_state=_dump_mfa_state(client, details["login_params"], method),
                mfa_method=method,
            )
        return LoginResult(session=client.dumps())
    except Exception as exc:
        raise classify(exc) from None


def resume_mfa(settings: GarminSettings, caller: str, mfa_state: str, code: str) -> str:
    """Finish a login with the MFA code; returns the session.

    A wrong code raises `MfaCodeInvalid` carrying the (possibly updated) challenge, so the
    user can try again from any replica.
    """
    try:
        state = json.loads(mfa_state)
    except ValueError:
        raise MfaChallengeLost("the pending MFA challenge cannot be read") from None
    client = _restore_mfa_client(settings, caller, state)
    client_state = {
        "client": client,
        "login_params": state["login_params"],
        "mfa_method": state["mfa_method"],
    }
    try:
        oauth1, oauth2 = garth.sso.resume_login(client_state, code)
    except Exception as exc:
        error = classify(exc)
        if isinstance(error, MfaCodeInvalid):
            error.mfa_state = _dump_mfa_state(client, state["login_params"], state["mfa_method"])
        raise error from None
    client.configure(oauth1_token=oauth1, oauth2_token=oauth2, domain=client.domain)
    return str(client.dumps())
