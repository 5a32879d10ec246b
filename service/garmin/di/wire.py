"""How ha-garmin's requests reach Garmin here: one `Wire` per use, active in its thread.

ha-garmin sends through sessions we hand it (the sign-in and MFA steps) and through two
module-level names nothing can be handed to: `_http_post` (the DI token endpoint: ticket
exchange and refresh, a curl_cffi `post` of its own each time) and `time.sleep` (its anti-WAF
pauses). Those two names are replaced once, at import, by shims that look up the wire
active in the calling context and, when none is, do exactly what ha-garmin's own did. A
ContextVar gives each thread its own: two users' logins in two pool threads never see each
other's wire, nothing is patched per call and no lock is taken.

A wire routes every request (sandbox, `service.garmin.routing`), adds the proxy, bounds each
request's timeout by what is left of the use's deadline, pauses or not
(`di_login_delays`), and records what Garmin answered (`classify.Seen`) so errors are
decided from Garmin's answers rather than from ha-garmin's messages. It also ends a sign-in
strategy whose sign-in page Garmin did not serve, before ha-garmin posts the credentials.
"""

from __future__ import annotations

import contextlib
import time
import types
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import ha_garmin.auth as ha_auth
from curl_cffi import requests as cffi_requests

from service.garmin.di.classify import Seen, seen_failure, seen_response, verdict
from service.garmin.engine import GarminSettings
from service.garmin.environment import EnvironmentSession
from service.garmin.errors import GarminProtocolError, GarminUnavailable, RateLimited
from service.garmin.routing import SANDBOX_CALLER_HEADER, RoutingRefused, routed_url

_ACTIVE: ContextVar[Wire | None] = ContextVar("di_wire", default=None)
SIGN_IN_PAGE = "/sign-in"  # the mobile and the portal sign-in page


class Wire:
    """One use's way to Garmin: routing, proxy, deadline, pauses, and what was answered."""

    def __init__(self, settings: GarminSettings, caller: str, *,
                 budget_seconds: float | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._caller = caller
        self._sleep = sleep
        self._clock = clock
        self._deadline = None if budget_seconds is None else clock() + budget_seconds
        self.seen: list[Seen] = []
        self.paused: list[float] = []  # the pauses ha-garmin asked for (taken or not)
        self.limited: RateLimited | None = None  # Garmin's 429: nothing more is sent

    @contextlib.contextmanager
    def active(self) -> Iterator[Wire]:
        """ha-garmin's token posts and pauses in this context go through this wire."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def mark(self) -> int:
        return len(self.seen)

    def since(self, mark: int) -> list[Seen]:
        return self.seen[mark:]

    def posts(self, marker: str, since: int = 0) -> int:
        """POSTs since `since` whose path contains `marker` (e.g. codes sent to Garmin)."""
        return sum(1 for s in self.seen[since:] if s.method == "POST" and marker in s.path)

    @property
    def expired(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def _timeout(self) -> float:
        timeout = self._settings.timeout_seconds
        if self._deadline is None:
            return timeout
        left = self._deadline - self._clock()
        if left <= 0:
            raise GarminUnavailable("the Garmin sign-in took too long", timeout=True)
        return min(timeout, left)

    def pause(self, seconds: float) -> None:
        """ha-garmin's anti-WAF pause: taken (within the deadline) or skipped."""
        self.paused.append(seconds)
        if not self._settings.di_login_delays:
            return
        if self._deadline is not None:
            seconds = min(seconds, max(self._deadline - self._clock(), 0.0))
        self._sleep(seconds)

    def send(self, method: str, call: Callable[..., Any], url: str, **kwargs: Any) -> Any:
        """One request through `call` (a session's get/post, or ha-garmin's post).

        After a 429 nothing more is sent on this wire: ha-garmin posts an MFA code to a
        second URL after a 429 on the first, and each post extends Garmin's block.
        """
        if self.limited is not None:
            raise self.limited
        try:
            target = routed_url(url, self._settings.base_url, self._settings.domain)
        except RoutingRefused:
            raise GarminProtocolError("refusing to send a request outside Garmin") from None
        headers = dict(kwargs.pop("headers", None) or {})
        if self._settings.base_url:
            headers[SANDBOX_CALLER_HEADER] = self._caller
        kwargs["timeout"] = self._timeout()
        proxy = self._settings.proxy_url
        if proxy:
            kwargs["proxies"] = {"http": proxy, "https": proxy}
        try:
            response = call(target, headers=headers, **kwargs)
        except Exception as exc:
            self.seen.append(seen_failure(method, url, exc))
            raise
        seen = seen_response(method, url, response)
        self.seen.append(seen)
        if seen.status in (427, 429) or seen.json_status == "429":
            self.limited = RateLimited("Garmin rate limit", retry_after=seen.retry_after)
        if _unserved_sign_in_page(seen):
            # ha-garmin posts the credentials after any sign-in page but a 427/429 (a
            # portal one even after a 403); without the page's cookies Garmin answers that
            # POST with a 429, so an SSO outage would turn into a block on the account
            raise verdict(seen) or GarminUnavailable("Garmin did not serve its sign-in page")
        return response

    def post(self, url: str, **kwargs: Any) -> Any:
        """ha-garmin's `_http_post` (curl_cffi, its fingerprint) through this wire."""
        return self.send("POST", _ORIGINAL_HTTP_POST, url, **kwargs)

    def session(self, kind: str, impersonate: str | None = None) -> WiredSession:
        """A fresh HTTP session for one sign-in: curl_cffi ("cffi") or requests (reading
        the environment's proxies once per host, as the data calls do)."""
        if kind == "cffi":
            return WiredSession(self, cffi_requests.Session(impersonate=impersonate), kind,
                                impersonate)
        return WiredSession(self, EnvironmentSession(), kind, None)


def _unserved_sign_in_page(seen: Seen) -> bool:
    return (seen.method == "GET" and seen.host == "sso" and seen.path.endswith(SIGN_IN_PAGE)
            and seen.status >= 400)


class WiredSession:
    """The session handed to ha-garmin's strategy: its `get`/`post` go through the wire.

    ha-garmin uses only `get`, `post` and the responses; `cookies` is the inner session's
    (what an MFA challenge carries across processes).
    """

    def __init__(self, wire: Wire, inner: Any, kind: str, impersonate: str | None) -> None:
        self.wire = wire
        self.inner = inner
        self.kind = kind
        self.impersonate = impersonate

    @property
    def cookies(self) -> Any:
        return self.inner.cookies

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.wire.send("GET", self.inner.get, url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.wire.send("POST", self.inner.post, url, **kwargs)

    def close(self) -> None:
        self.inner.close()


# -- the two shims, installed once ------------------------------------------------------

_ORIGINAL_HTTP_POST: Callable[..., Any] = getattr(
    ha_auth._http_post, "__wrapped__", ha_auth._http_post)


def _http_post(url: str, **kwargs: Any) -> Any:
    wire = _ACTIVE.get()
    if wire is None:
        return _ORIGINAL_HTTP_POST(url, **kwargs)
    return wire.post(url, **kwargs)


_http_post.__wrapped__ = _ORIGINAL_HTTP_POST  # type: ignore[attr-defined]


def _sleep(seconds: float) -> None:
    wire = _ACTIVE.get()
    if wire is None:
        time.sleep(seconds)
    else:
        wire.pause(seconds)


class _Clock(types.ModuleType):
    """The `time` ha-garmin's module sees: the real one, with a per-context `sleep`."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    sleep = staticmethod(_sleep)


def _install() -> None:
    ha_auth._http_post = _http_post
    if not isinstance(vars(ha_auth)["time"], _Clock):
        setattr(ha_auth, "time", _Clock("time"))  # noqa: B010 - not exported by ha-garmin


_install()
